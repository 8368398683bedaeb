package main

import (
	"log/slog"
	"sort"
	"sync"

	"github.com/edgeward/edgeward/config"
	"github.com/edgeward/edgeward/loader"
	"github.com/edgeward/edgeward/netwatch"
)

// enforcer keeps the set of enforced interfaces equal to the set of
// uplinks: it attaches the egress program to each uplink as it appears and
// detaches it from interfaces that stop being uplinks.
type enforcer struct {
	loader *loader.Loader
	log    *slog.Logger

	mu           sync.Mutex
	cfg          *config.Config
	links        map[int]linkState
	attachErrors uint64
}

// linkState is what the enforcer knows of one interface.
type linkState struct {
	link netwatch.Link
	role config.Role
	mode loader.AttachMode // empty when not attached
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

// reconcile attaches or detaches so that link is enforced iff it is an
// uplink. Repeated events for an unchanged interface cost nothing.
func (e *enforcer) reconcile(link netwatch.Link) {
	role := e.cfg.Classify(link.Name)
	prev, known := e.links[link.Index]
	if known && prev.link == link && prev.role == role && (prev.mode != "") == (role == config.RoleUplink) {
		e.links[link.Index] = linkState{link: link, role: role, mode: prev.mode}
		return
	}

	st := linkState{link: link, role: role}
	switch {
	case role == config.RoleUplink:
		st.mode = e.attach(link)
	case role == config.RoleIgnore:
		// Never touched, not even to detach.
	case known && prev.mode != "" || !known:
		e.detach(link, role)
	}
	e.links[link.Index] = st
}

func (e *enforcer) attach(link netwatch.Link) loader.AttachMode {
	mode, err := e.loader.Attach(loader.Interface{Index: link.Index, Name: link.Name, L3: link.L3})
	if err != nil {
		e.attachErrors++
		e.log.Error("uplink not enforced", "interface", link.Name, "err", err)
		return ""
	}
	e.log.Info("enforcing uplink", "interface", link.Name, "hook", "tc_egress", "attach", mode, "layer3", link.L3)
	return mode
}

// detach removes our program from a VPN or LAN interface, in case an
// earlier configuration made it an uplink.
func (e *enforcer) detach(link netwatch.Link, role config.Role) {
	if err := e.loader.Detach(link.Index); err != nil {
		e.log.Error("detach from interface", "interface", link.Name, "role", role, "err", err)
	}
}

func (e *enforcer) forget(link netwatch.Link) {
	st, ok := e.links[link.Index]
	delete(e.links, link.Index)
	if !ok || st.mode == "" {
		return
	}
	if err := e.loader.Detach(link.Index); err != nil {
		e.log.Warn("clean up after removed interface", "interface", link.Name, "err", err)
	}
	e.log.Info("uplink removed", "interface", link.Name)
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
