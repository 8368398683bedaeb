package sandbox

import (
	"net"
	"strconv"
	"strings"
)

// Addresses of the sandbox hosts. Every constant is a bare IP address;
// join it with a port with [Addr] or use the URL constants.
const (
	// OT host, namespace "ot", interface eth0.
	OTAddr4 = "10.10.0.2"
	OTAddr6 = "fd00:10::2"

	// Gateway, LAN side (lan0) and uplink side (wan0).
	GatewayLAN4 = "10.10.0.1"
	GatewayLAN6 = "fd00:10::1"
	GatewayWAN4 = "198.51.100.2"
	GatewayWAN6 = "2001:db8:100::2"

	// WANRouter is the uplink router (wan's eth0), the gateway's default
	// route.
	WANRouter4 = "198.51.100.1"
	WANRouter6 = "2001:db8:100::1"

	// InternetHost is a public host behind the uplink (on wan's lo).
	InternetHost4 = "192.0.2.80"
	InternetHost6 = "2001:db8:2::80"

	// ProxyAddr is the on-prem TLS proxy (tinyproxy on wan's lo), port
	// [ProxyPort].
	ProxyAddr4 = "192.0.2.10"
	ProxyAddr6 = "2001:db8:2::10"

	// EndpointHost is an approved public endpoint (on wan's lo).
	EndpointHost4 = "198.18.0.20"
	EndpointHost6 = "2001:db8:18::20"

	// VPCRouter is wan's side of the link to the cloud (vpn0), the
	// cloud's default route.
	VPCRouter4 = "203.0.113.1"
	VPCRouter6 = "2001:db8:113::1"

	// VPNPeer is the cloud's WireGuard endpoint (vpc's eth0), port
	// [WireGuardPort].
	VPNPeer4 = "203.0.113.10"
	VPNPeer6 = "2001:db8:113::10"

	// TunnelGateway and TunnelVPC are the two ends inside the tunnel.
	TunnelGateway4 = "10.99.0.1"
	TunnelGateway6 = "fd00:99::1"
	TunnelVPC4     = "10.99.0.2"
	TunnelVPC6     = "fd00:99::2"

	// VPCEndpoint is a private endpoint in the cloud (on vpc's lo),
	// reachable only through the tunnel.
	VPCEndpoint4 = "10.20.8.15"
	VPCEndpoint6 = "2001:db8:20::15"
)

// Prefixes of the sandbox networks.
const (
	LANPrefix4    = "10.10.0.0/24"
	LANPrefix6    = "fd00:10::/64"
	UplinkPrefix4 = "198.51.100.0/24"
	UplinkPrefix6 = "2001:db8:100::/64"
	CloudPrefix4  = "203.0.113.0/24"
	CloudPrefix6  = "2001:db8:113::/64"
	TunnelPrefix4 = "10.99.0.0/24"
	TunnelPrefix6 = "fd00:99::/64"
	VPCPrefix4    = "10.20.0.0/16"
	VPCPrefix6    = "2001:db8:20::/48"
)

// Interface names inside the namespaces. The WireGuard interfaces have
// per-sandbox names: see [Sandbox.WireGuard].
const (
	OTIface         = "eth0"
	GatewayLANIface = "lan0"
	GatewayWANIface = "wan0"
	WANUplinkIface  = "eth0"
	WANCloudIface   = "vpn0"
	VPCIface        = "eth0"
)

// Ports the sandbox servers listen on.
const (
	// HTTPSPort serves HTTPS on the internet host, the approved endpoint
	// and the VPC endpoint.
	HTTPSPort = 443
	// UnlistedPort is a TCP echo on the approved endpoint host, a port the
	// policy does not list.
	UnlistedPort = 8443
	// MQTTSPort is a TCP echo on the VPC endpoint.
	MQTTSPort = 8883
	// UDPEchoPort is a UDP echo on the internet host, the approved
	// endpoint and the VPC endpoint.
	UDPEchoPort = 5353
	// ProxyPort is tinyproxy's port.
	ProxyPort = 3128
	// WireGuardPort is the cloud side's WireGuard listen port.
	WireGuardPort = 51820
)

// Proxy URLs for HTTPSGet and curl -x.
const (
	ProxyURL4 = "http://192.0.2.10:3128"
	ProxyURL6 = "http://[2001:db8:2::10]:3128"
)

// Names that the HTTPS servers put first in their response bodies.
const (
	InternetHostName = "internet-host"
	EndpointHostName = "approved-endpoint"
	VPCEndpointName  = "vpc-endpoint"
)

// Addr joins an IP address and a port into "ip:port" or "[ip]:port".
func Addr(ip string, port int) string {
	return net.JoinHostPort(ip, strconv.Itoa(port))
}

// URL returns "https://ip/" or "https://[ip]/" for one of the HTTPS hosts.
func URL(ip string) string {
	if strings.Contains(ip, ":") {
		return "https://[" + ip + "]/"
	}
	return "https://" + ip + "/"
}
