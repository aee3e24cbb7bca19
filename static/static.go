// Package static embeds Latchkey's stylesheet and its one script.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
)

//go:embed app.css passkey.js
var files embed.FS

// FS holds the static files.
var FS fs.FS = files

// Version is a hash of the static files' contents. Pages link to
// /static/<file>?v=<Version>, so browsers may cache the files for a long time
// and still fetch new ones after an upgrade.
var Version = func() string {
	h := sha256.New()
	for _, name := range []string{"app.css", "passkey.js"} {
		b, _ := files.ReadFile(name)
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}()
