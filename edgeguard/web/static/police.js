/* The police dashboard: every hospital's link state (a silent hospital shows "site lost"),
   open alarms of all hospitals in priority order with their snapshots, acknowledge / dispatch /
   resolve, history with CSV export, and security warnings (forged or unverifiable messages are
   shown here and never as alarms). */
"use strict";

const Police = {
  alarms: new Map(),
  sites: new Map(),
  warnings: [],
  link: {},
  tab: "live",

  async start() {
    await EG.init();
    EG.mount(this, [["live", "nav.live"], ["history", "nav.history"], ["warnings", "nav.warnings"]]);
    this.select("live");
    EG.live("/api/stream", {
      state: (u) => {
        this.alarms = new Map(u.data.alarms.map((a) => [a.event_id, a]));
        this.sites = new Map(u.data.sites.map((s) => [s.id, s]));
        this.warnings = u.data.warnings;
        this.link = u.data.link;
        this.changed();
      },
      alarm: (u) => {
        if (u.data.police_state === "resolved") this.alarms.delete(u.data.event_id);
        else this.alarms.set(u.data.event_id, u.data);
        this.changed();
      },
      site: (u) => { this.sites.set(u.data.id, u.data); this.changed(); },
      warning: (u) => { this.warnings.unshift(u.data); this.warnings = this.warnings.slice(0, 50); this.changed(); },
      link: (u) => { this.link = u.data; this.changed(); },
    }, this.banner);
    // heartbeat ages move on their own: refresh the hospitals' states every 2 s
    setInterval(() => this.refreshSites(), 2000);
  },

  select(tab) {
    this.tab = tab;
    document.getElementById("header").replaceChildren(EG.header(this.tabs, tab, (t) => this.select(t)));
    this.view.replaceChildren();
    if (tab === "live") this.renderLive();
    if (tab === "history") this.renderHistory();
    if (tab === "warnings") this.renderWarnings();
    if (tab === "users") EG.usersView(this.view).catch(EG.showError);
  },

  async refreshSites() {
    try {
      const { sites, link } = await EG.api("/api/sites");
      this.sites = new Map(sites.map((s) => [s.id, s]));
      this.link = link;
      if (this.tab === "live") this.renderSites();
    } catch (e) { /* the banner shows a lost connection */ }
  },

  changed() {
    EG.alerting(this, [...this.alarms.values()].some((a) => a.police_state === "new"), "police.new");
    if (this.tab === "live") this.renderLive();
    if (this.tab === "warnings") this.renderWarnings();
  },

  sorted() {
    return [...this.alarms.values()].sort((a, b) =>
      a.priority - b.priority || (a.raised_at < b.raised_at ? -1 : 1));
  },

  renderLive() {
    this.sitesBox = EG.el("section", { id: "sites" });
    const open = this.sorted();
    const recent = this.warnings.slice(0, 3).map((w) => this.warningItem(w));
    this.view.replaceChildren(...[this.sitesBox,
      recent.length ? EG.el("section", { id: "recent-warnings" }, recent) : null,
      open.length ? EG.el("section", { class: "cards", id: "alarms" }, open.map((a) => this.card(a)))
        : EG.el("p", { id: "no-alarms", text: EG.t("live.none") })].filter(Boolean));
    this.renderSites();
  },

  renderSites() {
    if (!this.sitesBox) return;
    const link = this.link || {};
    const items = [...this.sites.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map((s) => {
      const state = s.state || "unknown";
      const age = s.heartbeat_age_s === null || s.heartbeat_age_s === undefined ? "–" : `${s.heartbeat_age_s} s`;
      return EG.el("div", { class: `site ${state}`, "data-site": s.id, "data-state": state },
        EG.el("strong", { text: s.name || s.id }), EG.el("br"),
        EG.el("span", { class: state === "online" ? "ok" : "bad", "data-role": "site-state", text: EG.t(`site.${state}`) }),
        ` · ${EG.t("site.heartbeat_age")} ${age}`,
        s.reason ? EG.el("div", { class: "meta", text: s.reason }) : null,
        s.alert ? EG.el("div", { class: "warnc", text: s.alert }) : null);
    });
    const linkDown = link.connected === false
      ? EG.el("div", { class: "banner", id: "broker-down", text: `${EG.t("site.broker_down")}: ${link.last_error || ""}` }) : null;
    this.sitesBox.replaceChildren(...(linkDown ? [linkDown] : []), ...items);
  },

  card(alarm) {
    const done = ["acknowledged", "dispatched", "resolved"];
    const reached = done.indexOf(alarm.police_state);
    const button = (action, state, key) => EG.el("button", {
      class: action === "ack" ? "primary" : "", "data-action": action, text: EG.t(key),
      disabled: done.indexOf(state) <= reached, onclick: () => this.act(alarm, action),
    });
    const site = this.sites.get(alarm.site);
    return EG.el("article", { class: `card p${alarm.priority}`, "data-event-id": alarm.event_id, "data-police-state": alarm.police_state },
      EG.el("h3", { text: `${EG.kind(alarm.kind)} · P${alarm.priority}` }),
      EG.el("div", { class: "where", text: `${alarm.site_name || (site && site.name) || alarm.site} · ${EG.where(alarm.location)}` }),
      EG.el("div", { class: "meta", text: `${EG.t("alarm.when")}: ${EG.time(alarm.raised_at)} · ${EG.t("alarm.source")}: ${alarm.source}` }),
      EG.el("span", { class: "state", text: alarm.site_state ? EG.t(`state.${alarm.site_state}`) : "" }), " ",
      EG.el("span", { class: "state police", "data-role": "police-state", text: alarm.police_state === "new" ? EG.t("police.new") : `${EG.t(`state.${alarm.police_state}`)} · ${alarm.police_by || ""}` }),
      EG.el("div", { class: "snaps" }, (alarm.snapshots || []).map((s) => EG.el("a", { href: s.url, target: "_blank" },
        EG.el("img", { src: s.url, alt: s.camera, title: s.camera, "data-camera": s.camera })))),
      EG.el("div", { class: "actions" }, button("ack", "acknowledged", "alarm.ack"),
        button("dispatch", "dispatched", "alarm.dispatch"), button("resolve", "resolved", "alarm.resolve"),
        EG.el("button", { "data-action": "details", text: EG.t("alarm.details"), onclick: () => this.details(alarm.event_id) })));
  },

  async act(alarm, action) {
    try {
      const { alarm: updated } = await EG.api(`/api/alarms/${alarm.event_id}/${action}`, { method: "POST" });
      if (updated.police_state === "resolved") this.alarms.delete(updated.event_id);
      else this.alarms.set(updated.event_id, updated);
      this.changed();
    } catch (e) { EG.showError(e); }
  },

  async details(eventId) {
    try {
      const { alarm } = await EG.api(`/api/alarms/${eventId}`);
      const rows = [
        ...alarm.messages.map((m) => [m.received_at, `${m.message} #${m.seq}`, (m.payload || {}).state || ""]),
        ...alarm.actions.map((a) => [a.at, `police ${a.state}`, `${a.by}${a.published_ok ? "" : " ✗"}`]),
      ].sort((a, b) => (a[0] < b[0] ? -1 : 1));
      EG.dialog(`${EG.kind(alarm.kind)} — ${alarm.site_name || alarm.site} · ${EG.where(alarm.location)}`,
        EG.el("p", { text: alarm.event_id }),
        EG.el("h3", { text: EG.t("alarm.timeline") }),
        EG.el("table", { id: "timeline" }, rows.map((r) => EG.el("tr", {}, r.map((c, i) => EG.el("td", { text: i === 0 ? EG.time(c) : c }))))),
        EG.el("h3", { text: EG.t("alarm.snapshots") }),
        EG.el("div", { class: "snaps" }, alarm.snapshots.map((s) => EG.el("img", { src: `/api/snapshots/${eventId}/${s.camera}`, alt: s.camera, title: `${s.camera} ${s.verified ? "✓ sha256" : ""}` }))));
    } catch (e) { EG.showError(e); }
  },

  warningItem(w) {
    return EG.el("div", { class: "warning-item", "data-warning": w.id },
      EG.el("strong", { text: `⚠ ${EG.t("warning.title")}` }), EG.el("br"),
      `${EG.time(w.at)} · ${w.site || "?"} · ${w.text}`, EG.el("div", { class: "meta", text: w.topic || "" }));
  },

  renderWarnings() {
    this.view.replaceChildren(EG.el("h2", { text: EG.t("nav.warnings") }),
      EG.el("section", { id: "warnings" }, this.warnings.map((w) => this.warningItem(w))));
  },

  renderHistory() {
    const since = EG.el("input", { name: "since", type: "datetime-local" });
    const until = EG.el("input", { name: "until", type: "datetime-local" });
    const site = EG.el("select", { name: "site" }, EG.el("option", { value: "", text: EG.t("history.any") }),
      [...this.sites.values()].map((s) => EG.el("option", { value: s.id, text: s.name || s.id })));
    const state = EG.el("select", { name: "state" }, EG.el("option", { value: "", text: EG.t("history.any") }),
      ["new", "acknowledged", "dispatched", "resolved"].map((s) => EG.el("option", { value: s, text: s === "new" ? EG.t("police.new") : EG.t(`state.${s}`) })));
    const results = EG.el("div", { id: "history" });
    const query = () => {
      const q = new URLSearchParams();
      const iso = (v) => (v ? new Date(v).toISOString() : "");
      for (const [k, v] of [["since", iso(since.value)], ["until", iso(until.value)], ["site", site.value], ["state", state.value]]) if (v) q.set(k, v);
      return q.toString();
    };
    const search = async () => {
      try {
        const { alarms } = await EG.api(`/api/alarms?${query()}`);
        results.replaceChildren(alarms.length ? EG.el("table", {},
          EG.el("tr", {}, ["alarm.when", "alarm.site", "alarm.kind", "alarm.where", "alarm.state", "alarm.by"].map((k) => EG.el("th", { text: EG.t(k) }))),
          alarms.map((a) => EG.el("tr", { class: "clickable", "data-event-id": a.event_id, onclick: () => this.details(a.event_id) },
            EG.el("td", { text: EG.time(a.raised_at) }), EG.el("td", { text: a.site_name || a.site }),
            EG.el("td", { text: EG.kind(a.kind) }), EG.el("td", { text: EG.where(a.location) }),
            EG.el("td", { text: a.police_state === "new" ? EG.t("police.new") : EG.t(`state.${a.police_state}`) }),
            EG.el("td", { text: a.police_by || "" })))) : EG.el("p", { text: EG.t("history.none") }));
      } catch (e) { EG.showError(e); }
    };
    const form = EG.el("form", { class: "filters", id: "history-filters" },
      EG.el("label", {}, EG.t("history.from"), since), EG.el("label", {}, EG.t("history.to"), until),
      EG.el("label", {}, EG.t("alarm.site"), site), EG.el("label", {}, EG.t("history.state"), state),
      EG.el("button", { type: "submit", class: "primary", text: EG.t("history.search") }),
      EG.el("button", { type: "button", id: "export-alarms", text: EG.t("history.export"), onclick: () => window.location.assign(`/api/alarms.csv?${query()}`) }));
    form.addEventListener("submit", (e) => { e.preventDefault(); search(); });
    this.view.replaceChildren(form, results);
    search();
  },
};

Police.start().catch((e) => { document.getElementById("app").textContent = String(e); });
