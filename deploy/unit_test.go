// Package deploy holds what runs Latchkey outside a container: the systemd
// unit latchkey.service. Its test checks the unit as systemd reads it.
package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// maxExposure is the highest `systemd-analyze security` exposure the unit
// may have, in tenths (0 is fully locked down, 100 not at all; 20 is 2.0,
// "OK").
const maxExposure = "20"

// TestServiceUnit: systemd-analyze verifies the unit, without a warning,
// with its ExecStart pointed at a freshly built latchkey (verify needs the
// program to exist), and rates its exposure at most 2.0. The unit keeps
// its database where the README says, and reads its settings from the
// environment file.
func TestServiceUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is not installed, and CI must verify the service unit (apt-get install -y systemd)")
		}
		t.Skip("systemd-analyze is not installed: skipping the service unit's test (to run it: apt-get install -y systemd)")
	}
	unit, err := os.ReadFile("latchkey.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nExecStart=/usr/local/bin/latchkey\n", "\nEnvironment=DATABASE_PATH=/var/lib/latchkey/latchkey.db\n",
		"\nEnvironmentFile=/etc/latchkey/latchkey.env\n", "\nDynamicUser=yes\n", "\nStateDirectory=latchkey\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit has no line %q", strings.TrimSpace(want))
		}
	}

	dir := t.TempDir()
	binary := filepath.Join(dir, "latchkey")
	if out, err := run(t, "go", "build", "-o", binary, ".."); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	copied := filepath.Join(dir, "latchkey.service")
	local := strings.Replace(string(unit), "\nExecStart=/usr/local/bin/latchkey\n", "\nExecStart="+binary+"\n", 1)
	if err := os.WriteFile(copied, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"verify", copied},
		{"security", "--offline=yes", "--threshold=" + maxExposure, copied},
	} {
		out, err := run(t, analyze, args...)
		if err != nil {
			t.Errorf("systemd-analyze %s: %v\n%s", args[0], err, out)
		} else if args[0] == "verify" && out != "" {
			t.Errorf("systemd-analyze verify warns:\n%s", out)
		}
	}
}

// run runs a program, within a minute, and returns its output.
func run(t *testing.T, program string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, program, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
