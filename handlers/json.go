package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latchkey/latchkey/errs"
)

var (
	errNotJSON   = errs.E(errs.Unsupported, "error.not_json")
	errEmptyBody = errs.E(errs.Invalid, "error.empty_body")
	errBadJSON   = errs.E(errs.Invalid, "error.bad_json")
)

// readJSON reads a JSON request body: 415 unless the Content-Type is
// application/json, 413 past the body limit, 400 if empty. Whether it is
// well-formed is left to the parser that reads it (see notJSONOr).
func readJSON(c echo.Context) ([]byte, error) {
	if !isJSONContentType(c.Request().Header.Get(echo.HeaderContentType)) {
		return nil, errNotJSON
	}
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, errEmptyBody
	}
	return body, nil
}

// notJSONOr explains a body its parser refused: "not valid JSON" if it is
// not, else the parser's own error. (Checking first would read every
// well-formed body twice.)
func notJSONOr(body []byte, err error) error {
	if !json.Valid(body) {
		return errBadJSON
	}
	return err
}

// readBeginBody accepts what a begin endpoint may get: nothing, or a JSON
// object (whose members are ignored).
func readBeginBody(c echo.Context) error {
	body, err := readBody(c)
	if err != nil || len(body) == 0 {
		return err
	}
	if !isJSONContentType(c.Request().Header.Get(echo.HeaderContentType)) {
		return errNotJSON
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return errBadJSON
	}
	return nil
}

func readBody(c echo.Context) ([]byte, error) {
	r := c.Request()
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= MaxBodyBytes {
		buf.Grow(int(r.ContentLength) + 1) // +1: ReadFrom checks for EOF
	}
	_, err := buf.ReadFrom(r.Body)
	body := buf.Bytes()
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, errs.E(errs.TooLarge, "")
	}
	if err != nil {
		return nil, errs.Wrap(err, errs.Invalid, "error.unreadable_body")
	}
	return body, nil
}

func isJSONContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}
