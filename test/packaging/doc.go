// Package packaging tests the Debian package that `make package` builds
// with scripts/package.sh: its contents and control files, an install
// into a temporary root with dpkg, the installed binary on the example
// configuration, the systemd unit (systemd-analyze verify and the
// properties enforcement depends on), and the installed daemon in a
// network sandbox under the unit's capabilities, started, reloaded,
// stopped and started again the way systemd does it.
package packaging
