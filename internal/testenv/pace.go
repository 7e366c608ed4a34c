package testenv

import (
	"sync"
	"time"
)

// Paced runs do(i) for every i in [0, n) from workers goroutines, offering
// the next i once every interval (at once when every is 0), and returns the
// errors, in no order. do guards whatever state it shares; to stop early it
// returns at once (a cancelled context).
func Paced(n, workers int, every time.Duration, do func(i int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := do(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for i := range n {
		next <- i
		if tick != nil {
			<-tick
		}
	}
	close(next)
	wg.Wait()
	return errs
}
