//go:build !linux

package testenv

import "syscall"

// sysProcAttr puts a child in its own process group (there is no Pdeathsig
// outside Linux: a child outlives a parent that dies without stopping it).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
