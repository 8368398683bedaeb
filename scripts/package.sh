#!/usr/bin/env bash
# Builds the Debian package of Edgeward with dpkg-deb: the binary (no cgo,
# so any architecture builds here), the systemd unit, the example
# configuration as a conffile, the documentation and the licences of every
# Go module linked in. Prints the path of the .deb.
#
# Environment:
#   VERSION  the version the binary reports (default: git describe);
#            scripts/deb-version.sh maps it to the package version
#   ARCH     amd64 or arm64 (default: go env GOARCH)
#   OUT      folder for the .deb (default: bin)
#   GO       the go command (default: go)
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
ARCH=${ARCH:-$($GO env GOARCH)}
OUT=${OUT:-bin}

# Docs installed under /usr/share/doc/edgeward, with their folders, so
# that README.md's links to the others keep working.
docs=(README.md config/README.md dnsguard/README.md)

die() {
	echo "package: $*" >&2
	exit 1
}

# commit_date prints the date of the commit built (YYYYMMDD, UTC), or
# today's outside git. SOURCE_DATE_EPOCH overrides both.
commit_date() {
	if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
		date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d
	elif git rev-parse --git-dir >/dev/null 2>&1; then
		TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d
	else
		date -u +%Y%m%d
	fi
}

# build_binary DEST compiles the daemon for $ARCH without cgo.
build_binary() {
	CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH $GO build \
		-ldflags "-X main.version=$VERSION" -o "$1" ./cmd/edgeward ||
		die "go build for linux/$ARCH failed"
}

# install_files ROOT lays out everything but the control files.
install_files() {
	local root=$1 doc
	build_binary "$root/usr/bin/edgeward"
	install -D -m 0644 packaging/edgeward.service "$root/lib/systemd/system/edgeward.service"
	install -D -m 0644 packaging/edgeward.yaml "$root/etc/edgeward/edgeward.yaml"
	for doc in "${docs[@]}"; do
		install -D -m 0644 "$doc" "$root/usr/share/doc/edgeward/$doc"
	done
	write_copyright "$root/usr/share/doc/edgeward"
}

# write_copyright DOCDIR writes the copyright file and copies the licence
# files of Go and of every module linked into the binary under
# DOCDIR/licenses/MODULE/. A module without a licence file is an error.
write_copyright() {
	local dir=$1 path version mdir files
	cp packaging/debian/copyright.head "$dir/copyright"
	install -D -m 0644 "$($GO env GOROOT)/LICENSE" "$dir/licenses/go/LICENSE"
	{
		echo "Files: licenses/*"
		echo "Comment: The binary is statically linked with the Go standard library"
		echo " and these modules; each one's licence files are in"
		echo " /usr/share/doc/edgeward/licenses/<module>/."
		echo " go $($GO env GOVERSION)"
	} >>"$dir/copyright"

	while read -r path version mdir; do
		files=$(find "$mdir" -maxdepth 1 -type f \
			\( -iname 'licen[cs]e*' -o -iname 'copying*' -o -iname 'notice*' -o -iname 'patents*' \))
		[ -n "$files" ] || die "module $path has no licence file in $mdir"
		mkdir -p "$dir/licenses/$path"
		# shellcheck disable=SC2086 # one name per line, none with spaces
		install -m 0644 $files "$dir/licenses/$path/"
		echo " $path $version" >>"$dir/copyright"
	done < <(CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH $GO list -deps \
		-f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}' \
		./cmd/edgeward | sort -u)
}

# write_control ROOT VERSION writes DEBIAN/ with the control file, the
# conffiles, the maintainer scripts and md5sums.
write_control() {
	local root=$1 version=$2 size script
	mkdir -p "$root/DEBIAN"
	size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
	sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$size/" \
		packaging/debian/control >"$root/DEBIAN/control"
	install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
	for script in postinst prerm postrm; do
		install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
	done
	(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' |
		sort -z | xargs -0 md5sum >DEBIAN/md5sums)
}

main() {
	case $ARCH in
	amd64 | arm64) ;;
	*) die "ARCH=$ARCH: only amd64 and arm64 are packaged" ;;
	esac
	command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"

	local version deb stage
	version=$(scripts/deb-version.sh "$VERSION" "$(commit_date)")
	deb="$OUT/edgeward_${version}_${ARCH}.deb"
	stage=$(mktemp -d)
	# shellcheck disable=SC2064 # expand now: stage is local
	trap "rm -rf '$stage'" EXIT

	install_files "$stage/root"
	write_control "$stage/root" "$version"
	mkdir -p "$OUT"
	# xz level 1: 6% bigger than the default level, in a sixth of the time.
	dpkg-deb --root-owner-group -Zxz -z1 --build "$stage/root" "$deb" >/dev/null ||
		die "dpkg-deb --build failed"
	echo "$deb"
}

main "$@"
