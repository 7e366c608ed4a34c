package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example.com/mail":                      "https://hooks.example.com/mail",
		"https://hooks.example.com/mail?token=fake-token&x=1": "https://hooks.example.com/mail?…",
		"https://hooks.example.com/mail#fake-token":           "https://hooks.example.com/mail#…",
		"https://user:fake-pw@hooks.example.com/mail?t=1":     "https://…@hooks.example.com/mail?…",
		"ftp://hooks.example.com/x?token=fake-token":          "ftp://hooks.example.com/x?…",
		"://%zz?token=fake-token":                             "://%zz?…",
		"hooks.example.com/path?token=fake-token":             "hooks.example.com/path?…",
		"http://proxy.example.com:3128":                       "http://proxy.example.com:3128",
		"http://a:fake-pw@proxy.example.com:3128":             "http://…@proxy.example.com:3128",
		"https://hooks.example.com/p/a@b?q=1":                 "https://hooks.example.com/p/a@b?…",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
	long := "https://hooks.example.com/" + strings.Repeat("a", 500)
	if got := URL(long); len(got) > 210 || !strings.HasSuffix(got, "…") {
		t.Errorf("URL of 526 bytes = %d bytes %q", len(got), got)
	}
}
