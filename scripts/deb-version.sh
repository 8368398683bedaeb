#!/usr/bin/env bash
# Maps the version `git describe --tags --always --dirty` gives (the one
# the binary reports) to a Debian package version, and prints it:
#
#   v1.2            1.2
#   v1.2-rc1        1.2~rc1                      (sorts before 1.2)
#   v1.2-3-gabc1234 1.2+git20261204.3.abc1234    (3 commits after v1.2)
#   abc1234         0.0~git20261204.abc1234      (no tag yet)
#   dev             0.0~dev                      (built outside git)
#   ...-dirty       the same with +dirty appended
#
# The date (YYYYMMDD, the second argument) is that of the commit, so that
# versions of untagged commits sort by time. Fails with status 1 when the
# result is not a valid Debian version (a tag that does not start with a
# number, characters Debian does not allow).
#
# Usage: scripts/deb-version.sh DESCRIBE YYYYMMDD
set -euo pipefail

die() {
	echo "deb-version: $*" >&2
	exit 1
}

[ $# -eq 2 ] || die "usage: deb-version.sh DESCRIBE YYYYMMDD"
describe=$1
date=$2
[[ $date =~ ^[0-9]{8}$ ]] || die "date $date is not YYYYMMDD"

# tag_version TAG: v1.2-rc1 becomes 1.2~rc1. A hyphen is not allowed in a
# Debian version without a revision; a tilde also sorts it before 1.2.
tag_version() {
	local v=${1#v}
	[[ $v =~ ^[0-9] ]] || die "tag $1 does not start with a version number"
	echo "${v//-/\~}"
}

suffix=""
if [[ $describe == *-dirty ]]; then
	describe=${describe%-dirty}
	suffix="+dirty"
fi

if [[ $describe =~ ^(.+)-([0-9]+)-g([0-9a-f]+)$ ]]; then
	version="$(tag_version "${BASH_REMATCH[1]}")+git$date.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
elif [[ $describe =~ ^[0-9a-f]{7,40}$ ]]; then
	version="0.0~git$date.$describe"
elif [ "$describe" = dev ]; then
	version="0.0~dev"
else
	version=$(tag_version "$describe")
fi
version+=$suffix

# The grammar of an upstream version without epoch and revision.
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]] ||
	die "$1 maps to $version, which is not a Debian version"
echo "$version"
