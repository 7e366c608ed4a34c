//go:build !linux

package temporalcluster

import "syscall"

// sysProcAttr puts each server process in a process group of its own.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
