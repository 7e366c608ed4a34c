// Package version holds hookrelay's version, stamped at build time with
// -ldflags "-X github.com/hookrelay/hookrelay/internal/version.Version=v1.2.3".
package version

import "runtime/debug"

// Version is the release version; "dev" unless stamped at build time.
var Version = "dev"

// String returns the stamped version, else the module version from the build info, else "dev".
func String() string {
	if Version != "dev" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return Version
}

// UserAgent is the User-Agent header every attempt sends.
func UserAgent() string {
	return "hookrelay/" + String() + " (+https://github.com/hookrelay/hookrelay)"
}
