package host

import "syscall"

// Env returns the variable name of the VM's environment. Envoy gives a module the variables of
// its vm_config.environment_variables (key_values, and host_env_keys read from Envoy's own
// environment) through WASI environ_get (proxy-wasm-cpp-host src/exports.cc), which the Go
// runtime reads when the module starts; natively it is the process's environment.
func Env(name string) (string, bool) { return syscall.Getenv(name) }
