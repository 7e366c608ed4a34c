package secretfile

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExposed(t *testing.T) {
	dir := t.TempDir()
	for mode, exposed := range map[os.FileMode]bool{0o600: false, 0o400: false, 0o640: true, 0o604: true, 0o644: true, 0o620: false} {
		path := filepath.Join(dir, mode.String())
		if err := os.WriteFile(path, []byte("fake"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		err := Exposed(path)
		if (err != nil) != exposed {
			t.Errorf("mode %04o: Exposed = %v, want exposed %t", mode, err, exposed)
		}
		var logs bytes.Buffer
		Warn(slog.New(slog.NewJSONHandler(&logs, nil)), "--token-file", path)
		if got := strings.Contains(logs.String(), `"level":"WARN"`) && strings.Contains(logs.String(), "--token-file"); got != exposed {
			t.Errorf("mode %04o: logged %q", mode, logs.String())
		}
	}
	if err := Exposed(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("a missing file: %v (reading it reports that)", err)
	}
}
