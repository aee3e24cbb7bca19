package auth

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// MilliTime is a JWT NumericDate with millisecond precision
// (1795000000.123). Token issue times carry milliseconds so that a sign-in
// one second after a revocation is never mistaken for one before it.
type MilliTime int64 // Unix milliseconds

// NewMilliTime returns t as a MilliTime.
func NewMilliTime(t time.Time) MilliTime { return MilliTime(t.UnixMilli()) }

// Time returns the time.
func (m MilliTime) Time() time.Time { return time.UnixMilli(int64(m)) }

// MarshalJSON writes seconds with up to three decimals, without float
// rounding.
func (m MilliTime) MarshalJSON() ([]byte, error) {
	ms := int64(m)
	if ms < 0 {
		return nil, errors.New("negative time")
	}
	b := strconv.AppendInt(nil, ms/1000, 10)
	if frac := ms % 1000; frac != 0 {
		s := strconv.FormatInt(frac+1000, 10)[1:] // three digits, zero-padded
		b = append(b, '.')
		b = append(b, strings.TrimRight(s, "0")...)
	}
	return b, nil
}

// UnmarshalJSON reads a non-negative JSON number of seconds; digits past the
// third decimal are ignored.
func (m *MilliTime) UnmarshalJSON(b []byte) error {
	s := string(b)
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || len(whole) > 12 || strings.Trim(whole, "0123456789") != "" {
		return errors.New("bad NumericDate")
	}
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return err
	}
	var ms int64
	if hasFrac {
		if frac == "" || len(frac) > 9 || strings.Trim(frac, "0123456789") != "" {
			return errors.New("bad NumericDate")
		}
		frac = (frac + "00")[:3]
		ms, _ = strconv.ParseInt(frac, 10, 64)
	}
	*m = MilliTime(sec*1000 + ms)
	return nil
}
