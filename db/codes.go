package db

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
)

// MaxCodeFailures is how many wrong codes an emailed link's code takes
// before it is void: the next code typed for it, right or not, is
// refused, and the person asks for a new email.
const MaxCodeFailures = 5

// codeNotVoided is the SQL condition a sign-in by code adds (see
// consumeLink): fewer than MaxCodeFailures wrong codes were typed for its
// link (issued at the parameter issued) or a newer one.
func codeNotVoided(issued string) string {
	return ` AND NOT (code_failures >= ` + strconv.Itoa(MaxCodeFailures) + ` AND code_link >= ` + issued + `)`
}

// CodeFailed counts a wrong code typed for the sign-in or recovery link
// issued at issuedAt (Unix µs) to email for the account handle, in the
// account's row, where every instance sees it. The row counts the wrong
// codes of the newest link tried (code_link): a code of a newer link
// starts the count again, one of an older link adds to the newer's, so
// each email buys at most MaxCodeFailures tries whatever order they come
// in. It returns the count; voided is true when the code can no longer
// be used (it has had its share, its link was used or a newer one was,
// or the account is gone or has another address).
func (d *DB) CodeFailed(ctx context.Context, handle []byte, email string, issuedAt int64) (failures int, voided bool, err error) {
	ctx, done := d.op(ctx, "CodeFailed")
	defer done()
	err = d.w.queryRow(ctx, `UPDATE users SET
			code_failures = CASE WHEN code_link >= $3 THEN code_failures + 1 ELSE 1 END,
			code_link = GREATEST(code_link, $3)
		WHERE handle = $1 AND email = $2 AND deleted_at IS NULL AND link_used_at < $3`+codeNotVoided("$3")+`
		RETURNING code_failures`, handle, email, issuedAt).Scan(&failures)
	if errors.Is(err, sql.ErrNoRows) {
		return MaxCodeFailures, true, nil
	}
	if err != nil {
		return 0, false, d.fail("count a wrong code", err)
	}
	return failures, failures >= MaxCodeFailures, nil
}
