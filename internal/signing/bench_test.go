package signing

import (
	"fmt"
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
