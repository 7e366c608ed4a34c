package signing

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func BenchmarkSign(b *testing.B) {
	s, _ := ParseSecret(vectorSecret)
	ts := time.Unix(vectorUnix, 0)
	for _, size := range []int{1 << 10, 64 << 10} {
		body := []byte(strings.Repeat("x", size))
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				Sign("acme:evt_0123456789abcdef", ts, body, s)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	s, _ := ParseSecret(vectorSecret)
	body := []byte(strings.Repeat("x", 1<<10))
	now := time.Now()
	h := http.Header{}
	Headers(h, "acme:evt_0123456789abcdef", now, body, s)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(h, body, now, 0, s); err != nil {
			b.Fatal(err)
		}
	}
}
