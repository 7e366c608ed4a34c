package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --api-token-file holds one token, as it always has, or two on two lines
// while the admin token is rotated.
func TestAPIToken(t *testing.T) {
	t.Setenv("HOOKRELAY_API_TOKEN", "")
	dir := t.TempDir()
	for _, tt := range []struct {
		content, token, second, err string
	}{
		{"tok-0123456789abcdef\n", "tok-0123456789abcdef", "", ""},
		{"  tok-0123456789abcdef  ", "tok-0123456789abcdef", "", ""},
		{"new-0123456789abcdef\nold-0123456789abcdef\n", "new-0123456789abcdef", "old-0123456789abcdef", ""},
		{"new-0123456789abcdef\r\n\r\nold-0123456789abcdef\r\n", "new-0123456789abcdef", "old-0123456789abcdef", ""},
		{"a-0123456789abcdef\nb-0123456789abcdef\nc-0123456789abcdef\n", "", "", "3 tokens"},
		{"\n \n", "", "", "the file is empty"},
	} {
		file := filepath.Join(dir, "token")
		if err := os.WriteFile(file, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		token, second, err := apiToken(file, false)
		if token != tt.token || second != tt.second || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%q: %q %q %v", tt.content, token, second, err)
		}
	}
	t.Setenv("HOOKRELAY_API_TOKEN", "env-0123456789abcdef")
	if token, second, err := apiToken("", false); token != "env-0123456789abcdef" || second != "" || err != nil {
		t.Errorf("from the environment: %q %q %v", token, second, err)
	}
	if _, _, err := apiToken("", true); err == nil {
		t.Errorf("a token and --insecure-no-auth: no error")
	}
}
