package views

import "github.com/latchkey/latchkey/errs"

func errMessage(err error) string { return errs.Message(err) }
