package views

import (
	"github.com/latchkey/latchkey/errs"
	"github.com/latchkey/latchkey/mail"
)

// MaxPasskeyName is the longest passkey name, in characters.
const MaxPasskeyName = 64

// SignInForm is the sign-in page's form: the email field, where to go
// afterwards, and what to tell the person.
type SignInForm struct {
	Email string
	Next  string
	// Error is about the email field (shown beside it).
	Error string
	// Problem is about the whole attempt, such as mail that could not be
	// sent (shown above the form).
	Problem string
}

// Validate normalises the email and reports whether it is acceptable,
// setting Error to what the person should fix if not.
func (f *SignInForm) Validate() bool { return validateEmail(&f.Email, &f.Error) }

// EmailChangeForm is the account page's "change email" form.
type EmailChangeForm struct {
	Email string
	Error string
}

// Validate normalises the new address.
func (f *EmailChangeForm) Validate() bool { return validateEmail(&f.Email, &f.Error) }

// validateEmail normalises *email in place, or sets *problem to what the
// person should fix.
func validateEmail(email, problem *string) bool {
	normal, err := mail.NormalizeAddress(*email)
	if err != nil {
		*problem = errs.Message(err)
		return false
	}
	*email = normal
	return true
}
