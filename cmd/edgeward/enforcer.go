package main

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/loader"
	"github.com/edgeward/edgeward/netwatch"
)

// enforcer keeps the programs on every interface equal to what its role
// needs: egress and ingress hooks on uplinks, the XDP hook on LAN
// interfaces, nothing on VPN interfaces, and it never touches ignored
// ones. It acts on each interface as it appears, changes or goes.
type enforcer struct {
	loader *loader.Loader
	log    *slog.Logger

	mu           sync.Mutex
	cfg          *config.Config
	links        map[int]linkState
	attachErrors uint64
	onVPNUp      func() // called when a VPN interface comes up; must not block
}

// linkState is what the enforcer knows of one interface.
type linkState struct {
	link     netwatch.Link
	role     config.Role
	attached []loader.Attached
	failed   bool // the last attach failed; retried on the next event
}

func newEnforcer(cfg *config.Config, l *loader.Loader, log *slog.Logger) *enforcer {
	return &enforcer{cfg: cfg, loader: l, log: log, links: map[int]linkState{}}
}

// handle applies one interface event.
func (e *enforcer) handle(ev netwatch.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()

	if ev.Removed {
		e.forget(ev.Link)
		return
	}
	e.reconcile(ev.Link)
}

// reconcile brings one interface to what its role needs. Repeated events
// for an unchanged interface cost nothing.
func (e *enforcer) reconcile(link netwatch.Link) {
	role := e.cfg.Classify(link.Name)
	prev, known := e.links[link.Index]
	if known && prev.link == link && prev.role == role && !prev.failed {
		return
	}

	st := linkState{link: link, role: role}
	switch role {
	case config.RoleIgnore:
		// Nothing is ever attached here; programs of ours left by an
		// earlier configuration are removed, nothing else is touched.
		if err := e.loader.Detach(link.Index); err != nil {
			e.log.Error("remove programs from ignored interface", "interface", link.Name, "err", err)
		}
		e.setRole(link, role)
	case config.RoleLoopback:
		e.setRole(link, role)
	default:
		st.attached, st.failed = e.attach(link, role)
	}
	e.links[link.Index] = st
	if role == config.RoleVPN && link.Up && !(known && prev.link.Up) && e.onVPNUp != nil {
		e.onVPNUp()
	}
}

// setOnVPNUp sets the function called, under the enforcer's lock, each
// time a VPN interface comes up; it must not block.
func (e *enforcer) setOnVPNUp(fn func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onVPNUp = fn
}

func (e *enforcer) setRole(link netwatch.Link, role config.Role) {
	if err := e.loader.SetRole(link.Index, loaderRole(role)); err != nil {
		e.log.Error("record interface role", "interface", link.Name, "role", role, "err", err)
	}
}

// attach puts the programs of role on link and logs what it did.
func (e *enforcer) attach(link netwatch.Link, role config.Role) ([]loader.Attached, bool) {
	iface := loader.Interface{Index: link.Index, Name: link.Name, L3: link.L3}
	attached, err := e.loader.Attach(iface, loaderRole(role))
	if err != nil {
		e.attachErrors++
		e.log.Error("interface not enforced as its role needs", "interface", link.Name, "role", role, "err", err)
		return attached, true
	}
	for _, a := range attached {
		if a.Mode == loader.ModeXDPGeneric {
			e.log.Warn("driver has no native XDP; generic mode works but drops later", "interface", link.Name, "hook", a.Hook)
		}
		e.log.Info("enforcing", "interface", link.Name, "role", role, "hook", a.Hook, "attach", a.Mode, "layer3", link.L3)
	}
	return attached, false
}

func (e *enforcer) forget(link netwatch.Link) {
	st, ok := e.links[link.Index]
	delete(e.links, link.Index)
	if err := e.loader.Detach(link.Index); err != nil {
		e.log.Warn("clean up after removed interface", "interface", link.Name, "err", err)
	}
	if ok && len(st.attached) > 0 {
		e.log.Info("interface removed", "interface", link.Name, "role", st.role)
	}
}

// setConfig switches to a new configuration and re-classifies every known
// interface under it.
func (e *enforcer) setConfig(cfg *config.Config) {
	e.mu.Lock()
	defer e.mu.Unlock()

	e.cfg = cfg
	for _, st := range e.links {
		e.reconcile(st.link)
	}
}

// snapshot returns the known interfaces, by name.
func (e *enforcer) snapshot() (links []linkState, attachErrors uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()

	for _, st := range e.links {
		links = append(links, st)
	}
	sort.Slice(links, func(i, j int) bool { return links[i].link.Name < links[j].link.Name })
	return links, e.attachErrors
}

// isLAN tells whether the interface with this index is a LAN interface
// the enforcer knows. Cheap enough for every intercepted DNS packet.
func (e *enforcer) isLAN(ifindex int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.links[ifindex]
	return ok && st.role == config.RoleLAN
}

// loaderRole maps a config role onto the data plane's.
func loaderRole(r config.Role) loader.Role {
	switch r {
	case config.RoleVPN:
		return loader.RoleVPN
	case config.RoleLAN:
		return loader.RoleLAN
	case config.RoleIgnore:
		return loader.RoleIgnore
	case config.RoleLoopback:
		return loader.RoleLoopback
	}
	return loader.RoleUplink
}

// name returns the name of the interface with index ifindex, as the
// enforcer last saw it.
func (e *enforcer) name(ifindex int) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if st, ok := e.links[ifindex]; ok {
		return st.link.Name
	}
	return fmt.Sprintf("if%d", ifindex)
}
