//go:build !linux

package main

import "syscall"

// sysProcAttr leaves a child in the stack's process group: Ctrl-C reaches it as well, and every
// child stops on SIGINT by itself.
func sysProcAttr() *syscall.SysProcAttr { return nil }
