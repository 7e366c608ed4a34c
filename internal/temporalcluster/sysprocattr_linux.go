package temporalcluster

import "syscall"

// sysProcAttr puts each server process in a process group of its own (so a
// kill reaches everything it started) and has Linux kill it should the test
// process die without calling Stop.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
