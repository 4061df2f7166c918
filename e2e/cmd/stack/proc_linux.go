package main

import "syscall"

// sysProcAttr puts a child in its own process group, so that Ctrl-C reaches the stack alone and
// the stack stops the children in order, and has Linux send it SIGTERM if the stack dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
