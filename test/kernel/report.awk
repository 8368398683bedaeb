# report.awk reads the output of steps.sh (a guest's console log or a host
# run) and prints one tab-separated line per finding:
#
#	step NAME pass|fail|skip DETAIL   each step named in -v steps="A B ..."
#	verifier PROGRAM INSNS STATES     each program TestVerifierStats measured
#	attach CASE ATTACHMENTS           how the netns step attached, per case
#	why LINE                          lines that explain a failure
#
# A step fails when it never began or ended (boot failure, panic, timeout),
# exited non-zero, or matched no test; it is skipped when a test skipped.
# Plain POSIX awk (mawk): no match() arrays.
BEGIN {
	OFS = "\t"
	nsteps = split(steps, order, " ")
	tail_size = 25
}

{
	sub(/\r$/, "") # the serial console ends lines in CR LF
	tail[NR % tail_size] = $0
}

/^@@edgeward begin / { cur = $3; begun[cur] = 1; next }
/^@@edgeward end / { rc[$3] = substr($4, 4); cur = ""; next }
cur == "" { next }

skip_of != "" {
	line = $0
	sub(/^[ \t]+/, "", line)
	skipped[skip_of] = skipped[skip_of] " " line
	skip_of = ""
}
/--- FAIL: / { failed[cur] = failed[cur] " " $3 }
/--- SKIP: / { skip_of = cur; skipped[cur] = skipped[cur] "; " $3 ":" }
/^testing: warning: no tests to run/ { notests[cur] = 1 }
/--- FAIL|^panic:|_test\.go:[0-9]+: |^insmod|^FAIL/ && nwhy[cur] < 30 {
	why[cur, ++nwhy[cur]] = $0
}

/verifier: [a-z_0-9]+ insns=[0-9]+ states=[0-9]+/ {
	for (i = 1; i <= NF; i++) {
		if ($i == "verifier:") prog = $(i + 1)
		if ($i ~ /^insns=/) insns = substr($i, 7)
		if ($i ~ /^states=/) states = substr($i, 8)
	}
	print "verifier", prog, insns, states
}
/attach mode: / && cur == "netns" {
	for (i = 1; i <= NF; i++) {
		if ($i != "mode:") continue
		c = $(i + 1)
		if (!(c in attach)) cases[++ncases] = c
		attach[c] = attach[c] (attach[c] == "" ? "" : ", ") $(i + 2) " " $(i + 3) " " $(i + 4)
	}
}

END {
	for (i = 1; i <= nsteps; i++)
		judge(order[i])
	for (i = 1; i <= ncases; i++)
		print "attach", cases[i], attach[cases[i]]
}

function judge(s, j) {
	if (!(s in begun)) {
		print "step", s, "fail", "did not run: no output (boot failure, kernel panic or timeout)"
		if (!told_tail) {
			told_tail = 1
			for (j = NR - tail_size + 1; j <= NR; j++)
				if (j > 0) print "why", tail[j % tail_size]
		}
		return
	}
	if (!(s in rc))
		print "step", s, "fail", "did not finish (kernel panic or timeout)"
	else if (rc[s] != 0)
		print "step", s, "fail", "exit status " rc[s] (s in failed ? ", failed:" failed[s] : "")
	else if (s in notests)
		print "step", s, "fail", "no test matched"
	else if (s in skipped)
		print "step", s, "skip", substr(skipped[s], 3)
	else {
		print "step", s, "pass", ""
		return
	}
	for (j = 1; j <= nwhy[s]; j++)
		print "why", why[s, j]
}
