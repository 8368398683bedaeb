// Package kernel holds the tests of Edgeward's kernel matrix: what must hold
// on every kernel the enforcer supports, not only on the one at hand.
//
// `make test-kernels` (scripts/test-kernels.sh) builds these tests and the
// loader's BPF_PROG_TEST_RUN tests as static binaries and runs them in a qemu
// guest per Debian cloud kernel, and directly on the running kernel:
//
//	host: go test -c ./test/kernel ./loader ──► initramfs (busybox, modules, tests)
//	                                                │
//	      qemu -accel tcg, no network device ◄──────┘
//	      guest /init: insmod veth, sch_ingress, cls_bpf, tun, nfnetlink_queue
//	                   TestVerifierStats, TestEgress*, TestAttachConnections
//	                   prints "@@ step result" lines on the serial console
//	host: collects the lines into one report and bench/verifier-<date>.txt
//
// The tests build on nothing but the kernel and root: each makes its own
// network namespaces and bpffs, so they also run on the host under make test.
//
//   - TestVerifierStats loads every program of the BPF object the loader
//     embeds with the verifier's statistics on, and logs the processed
//     instructions and states of each as "verifier: NAME insns=N states=M".
//   - TestAttachConnections attaches the egress program to a veth in a
//     network namespace, both as the loader chooses (tcx from Linux 6.6,
//     clsact before) and with clsact forced, and checks one allowed and one
//     denied TCP connection per address family through each.
package kernel
