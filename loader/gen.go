package loader

// The BPF objects are generated from ../bpf by bpf2go and committed, so that
// building Edgeward needs no C compiler. `make generate` runs this with the
// pinned clang; `make check` fails when the committed output is stale.
//
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc ${BPF_CLANG} -strip ${BPF_STRIP} -cflags "${BPF_CFLAGS}" -target bpfel -go-package loader -type ew_bucket -type ew_table_hash -type ew_family_policy -type ew_family_index -type ew_rule -type ew_settings -type ew_port_range -type ew_counter -type ew_frag_key -type ew_frag_verdict -type ew_hook -type ew_verdict -type ew_reason -type ew_flow_key -type ew_flow -type ew_event -type ew_event_budget -type ew_learned_key -type ew_learned -type ew_explanation edgeward ../bpf/edgeward.c
