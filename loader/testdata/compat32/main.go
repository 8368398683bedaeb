// Command compat32 sets PACKET_QDISC_BYPASS on an AF_PACKET socket and
// prints "ok" or the error. Built for 386 and run on a 64-bit kernel, its
// system calls are compat calls, which cgroup sockopt programs never see
// (loader's TestCompatCallsSkipSocketGuard).
package main

import (
	"fmt"
	"os"
	"syscall"
)

// packetQdiscBypass is PACKET_QDISC_BYPASS of linux/if_packet.h.
const packetQdiscBypass = 20

func main() {
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0)
	if err != nil {
		fmt.Println("socket:", err)
		os.Exit(1)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_PACKET, packetQdiscBypass, 1); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ok")
}
