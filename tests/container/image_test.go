// Package container tests Latchkey's image: the repository's Containerfile,
// built and run with Podman as the README says, talked to over HTTP as a
// browser would.
package container

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/db/dbtest"
	"github.com/latchkey/latchkey/tests/testkit"
)

// maxImageBytes is the image size the README promises not to exceed.
const maxImageBytes = 25_000_000

// TestImage builds the binary and the image as the README says, checks
// its size and contents, then runs it as an operator would, read-only on
// the host's network: on SQLite with its data in a named volume, and on
// PostgreSQL with SECRET_KEYS.
func TestImage(t *testing.T) {
	pm := newPodman(t)
	image := pm.build(t)

	size, err := strconv.ParseInt(pm.must(t, "image", "inspect", "--format", "{{.Size}}", image), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image size: %d bytes (%.1f MB)", size, float64(size)/1e6)
	if size > maxImageBytes {
		t.Errorf("the image is %d bytes, more than %d", size, maxImageBytes)
	}
	checkFiles(t, pm, image)

	_, port, _ := net.SplitHostPort(freeAddr(t))
	base := "http://localhost:" + port
	serve := []string{"--read-only", "-e", "LISTEN_ADDR=:" + port, "-e", "BASE_URL=" + base}

	// Sign up by the link in the container's log; find the account with
	// `latchkey admin users` inside the container; the server runs as uid
	// 65532, passes the image's HEALTHCHECK, and stops gracefully on
	// SIGTERM within 5 s. A new container on the same volume finds the
	// account and the secret: the session from before still works, and
	// the account signs in again.
	t.Run("sqlite", func(t *testing.T) {
		run := append([]string{"-v", pm.volume(t) + ":/data"}, serve...)
		first := pm.run(t, run...)
		waitHealthy(t, pm, first, base)
		if out, err := pm.cmd(t, "healthcheck", "run", first); err != nil {
			t.Errorf("the image's HEALTHCHECK failed on a running server: %v\n%s", err, out)
		}
		if user := strings.Fields(pm.must(t, "top", first, "user")); len(user) != 2 || user[1] != "65532" {
			t.Errorf("the server runs as %q, want uid 65532", user)
		}
		browser := testkit.NewBrowser(t, base)
		signInByLink(t, pm, first, browser, "operator@example.com", true)
		if out, err := pm.cmd(t, "exec", first, "latchkey", "admin", "users"); err != nil || !strings.Contains(out, "operator@example.com") || !strings.HasSuffix(out, "\n1 account") {
			t.Errorf("latchkey admin users in the container: %v\n%s", err, out)
		}
		stopGracefully(t, pm, first)

		second := pm.run(t, run...)
		waitHealthy(t, pm, second, base)
		if r := browser.Get("/account"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "operator@example.com") {
			t.Errorf("in a new container on the same volume, the session from before is gone: GET /account = %d", r.StatusCode)
		}
		signInByLink(t, pm, second, testkit.NewBrowser(t, base), "operator@example.com", false)
		stopGracefully(t, pm, second)
	})

	// PostgreSQL, on the host's loopback, with shared secrets: no volume
	// needed (the image's is left empty).
	t.Run("postgres", func(t *testing.T) {
		run := append([]string{"-e", "DATABASE_URL=" + dbtest.PostgresURL(t), "-e", "SECRET_KEYS=" + testkit.NewSecret()}, serve...)
		container := pm.run(t, run...)
		waitHealthy(t, pm, container, base)
		signInByLink(t, pm, container, testkit.NewBrowser(t, base), "pg@example.com", true)
		if out, err := pm.cmd(t, "exec", container, "latchkey", "admin", "users"); err != nil || !strings.Contains(out, "pg@example.com") {
			t.Errorf("latchkey admin users on PostgreSQL: %v\n%s", err, out)
		}
		stopGracefully(t, pm, container)
	})
}

// checkFiles checks what the image holds: the binary, the CA bundle, and
// an empty /data owned by uid 65532 (which a new named volume copies on
// Docker; Podman chowns a new volume to the user anyway), and no other
// file: no shell, nothing else of the build context.
func checkFiles(t *testing.T, pm *podman, image string) {
	t.Helper()
	container := pm.prefix + "-files"
	pm.cleanup(t, "rm", "--force", "--volumes", container)
	pm.must(t, "create", "--name", container, image)
	rootfs := filepath.Join(t.TempDir(), "rootfs.tar")
	pm.must(t, "export", "--output", rootfs, container)
	f, err := os.Open(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var files []string
	data := false
	for r := tar.NewReader(f); ; {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		switch {
		case name == "data":
			data = true
			if h.Typeflag != tar.TypeDir || h.Uid != 65532 || h.Gid != 65532 {
				t.Errorf("/data is type %c, owned by %d:%d, want a folder owned by 65532:65532", h.Typeflag, h.Uid, h.Gid)
			}
		case h.Typeflag != tar.TypeDir:
			files = append(files, name)
		}
	}
	if !data {
		t.Error("the image has no /data")
	}
	if want := []string{"etc/ssl/certs/ca-certificates.crt", "usr/local/bin/latchkey"}; !slices.Equal(files, want) {
		t.Errorf("the image holds %v, want %v alone", files, want)
	}
}

// signInByLink asks for a link for email, reads it from the container's
// log (SMTP_URL is empty), checks that its page offers to create the
// account or to sign in to it, as newAccount says, and confirms it: b is
// then signed in.
func signInByLink(t *testing.T, pm *podman, container string, b *testkit.Browser, email string, newAccount bool) {
	t.Helper()
	before := len(links(pm.logs(t, container)))
	r := b.Post("/signin/email", url.Values{"email": {email}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin/sent" {
		t.Fatalf("POST /signin/email = %d %q, want 303 /signin/sent", r.StatusCode, r.Header.Get("Location"))
	}
	var token string
	for deadline := time.Now().Add(10 * time.Second); token == ""; time.Sleep(100 * time.Millisecond) {
		if found := links(pm.logs(t, container)); len(found) > before {
			token = found[len(found)-1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no link for %s in the container's log:\n%s", email, pm.logs(t, container))
		}
	}
	r = b.Get("/signin/link?token=" + token)
	if created := strings.Contains(r.Body, "Create your account"); r.StatusCode != http.StatusOK || created != newAccount {
		t.Fatalf("GET /signin/link = %d; offers to create an account: %v, want %v\n%s", r.StatusCode, created, newAccount, r.Body)
	}
	if r := b.Post("/signin/link", url.Values{"token": {token}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /signin/link = %d, want 303:\n%s", r.StatusCode, r.Body)
	}
	if r := b.Get("/account"); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, email) {
		t.Fatalf("GET /account after signing in = %d, without %s", r.StatusCode, email)
	}
}

var linkPattern = regexp.MustCompile(`/signin/link\?token=([A-Za-z0-9_-]+)`)

// links returns the tokens of the sign-in links in a log, oldest first.
func links(log string) []string {
	var tokens []string
	for _, m := range linkPattern.FindAllStringSubmatch(log, -1) {
		tokens = append(tokens, m[1])
	}
	return tokens
}

// waitHealthy waits until the server in container answers /healthz.
func waitHealthy(t *testing.T, pm *podman, container, base string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server in the container did not answer /healthz: %v\n%s", err, pm.logs(t, container))
		}
	}
}

// stopGracefully stops container as `podman stop` does (SIGTERM, and
// SIGKILL only after 10 s) and checks that the server ended by itself,
// within 5 s, cleanly.
func stopGracefully(t *testing.T, pm *podman, container string) {
	t.Helper()
	start := time.Now()
	pm.must(t, "stop", "--time", "10", container)
	took := time.Since(start)
	if took > 5*time.Second {
		t.Errorf("podman stop took %v, want at most 5 s", took)
	}
	if code := pm.must(t, "inspect", "--format", "{{.State.ExitCode}}", container); code != "0" {
		t.Errorf("the server exited with %s after SIGTERM, want 0", code)
	}
	if log := pm.logs(t, container); !strings.Contains(log, "msg=stopped") {
		t.Errorf("no clean-shutdown message in the log:\n%s", log)
	}
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// podman runs Podman for one test, naming everything it makes with a
// prefix of its own and removing it all when the test ends.
type podman struct {
	prefix     string
	env        []string
	containers int // how many it has run
}

// newPodman returns Podman, or skips the test when it is not installed
// (failing it instead under CI, which must test the image).
func newPodman(t *testing.T) *podman {
	t.Helper()
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed, and CI must test the image (.ci/run installs podman and runc)", tool)
			}
			t.Skipf("%s is not installed: skipping the image test (to run it: apt-get install -y podman runc)", tool)
		}
	}
	// What the sandboxes CI runs in need, and real hosts do not mind:
	// Podman's default runtime (crun) cannot set rlimits there and refuses
	// their cgroup layout, so every command runs with runc, no default
	// ulimits, and cgroupfs instead of systemd. Kept here, not in the image
	// or the README.
	conf := filepath.Join(t.TempDir(), "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = \"cgroupfs\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	return &podman{prefix: "latchkey-test-" + hex.EncodeToString(b), env: append(os.Environ(), "CONTAINERS_CONF="+conf)}
}

// cmd runs podman with args, within a minute, and returns its output
// (standard output and error together, trimmed).
func (p *podman) cmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return p.cmdWithin(t, time.Minute, args...)
}

func (p *podman) cmdWithin(t *testing.T, limit time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c := exec.CommandContext(ctx, "podman", append([]string{"--runtime", "runc"}, args...)...)
	c.Env = p.env
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("podman %s: no answer within %v", args[0], limit)
	}
	return strings.TrimSpace(out.String()), err
}

// must runs podman with args and returns its standard output, failing the
// test if it fails.
func (p *podman) must(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "podman", append([]string{"--runtime", "runc"}, args...)...)
	c.Env = p.env
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// cleanup removes what the test made, whatever happened to it.
func (p *podman) cleanup(t *testing.T, args ...string) {
	t.Cleanup(func() {
		if out, err := p.cmd(t, args...); err != nil {
			t.Logf("cleaning up: podman %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
}

// build builds the binary and the image as the README says, in a folder
// of its own holding what the repository's root would (the Containerfile,
// .dockerignore, deploy/), and returns the image's name.
func (p *podman) build(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"Containerfile", ".dockerignore", "deploy/latchkey.service"} {
		copyFile(t, filepath.Join(root, f), filepath.Join(dir, f))
	}
	copyFile(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(dir, "ca-certificates.crt"))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	goBuild := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "latchkey"), ".")
	goBuild.Dir = root
	goBuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := goBuild.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	image := "localhost/" + p.prefix + ":test"
	// --layers=false: no intermediate images are left behind.
	if out, err := p.cmdWithin(t, 5*time.Minute, "build", "--format", "docker", "--layers=false", "-t", image, dir); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	p.cleanup(t, "rmi", "--force", image)
	return image
}

// volume creates a named volume.
func (p *podman) volume(t *testing.T) string {
	t.Helper()
	name := p.prefix + "-data"
	p.must(t, "volume", "create", name)
	p.cleanup(t, "volume", "rm", "--force", name)
	return name
}

// run starts a container of the test's image on the host's network, with
// the options given, and returns its name.
func (p *podman) run(t *testing.T, options ...string) string {
	t.Helper()
	p.containers++
	name := fmt.Sprintf("%s-%d", p.prefix, p.containers)
	p.cleanup(t, "rm", "--force", "--volumes", name)
	args := append([]string{"run", "--detach", "--name", name, "--network", "host"}, options...)
	p.must(t, append(args, "localhost/"+p.prefix+":test")...)
	return name
}

// logs returns the container's log, standard output and error together.
func (p *podman) logs(t *testing.T, container string) string {
	t.Helper()
	out, err := p.cmd(t, "logs", container)
	if err != nil {
		t.Fatalf("podman logs: %v\n%s", err, out)
	}
	return out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
