package tests

import (
	"encoding/json"
	"strconv"
)

func itoa(n int) string { return strconv.Itoa(n) }

func boolStr(b bool) string { return strconv.FormatBool(b) }

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
