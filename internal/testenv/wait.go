package testenv

import (
	"context"
	"fmt"
	"time"
)

// pollInterval is how often Wait asks again.
const pollInterval = 50 * time.Millisecond

// Wait asks cond every 50ms until it returns nil, timeout passes or ctx
// ends. The error names what it waited for and cond's last answer: a
// condition is polled, never slept on.
func Wait(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s waiting for %s: %w", timeout, what, err)
		case <-tick.C:
		}
	}
}
