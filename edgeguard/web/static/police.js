/* The police dashboard: every hospital's link state (a silent hospital shows "site lost"),
   open alarms of all hospitals in priority order with their snapshots, acknowledge / dispatch /
   resolve, history with CSV export, and security warnings (forged or unverifiable messages are
   shown here and never as alarms). */
"use strict";

const Police = {
  alarms: new Map(),  // the open alarms on cards: at most liveMax, ranked as the server does
  openTotal: 0,  // open alarms in all: the others are in the history
  liveMax: 100,
  cards: new Map(),  // event_id -> {alarm, el}: a card is built again only when its alarm changed
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
        this.setLive(u.data);
        this.sites = new Map(u.data.sites.map((s) => [s.id, s]));
        this.warnings = u.data.warnings;
        this.link = u.data.link;
        this.changed();
      },
      alarm: (u) => this.putAlarm(u.data, u.open_total),
      site: (u) => { this.sites.set(u.data.id, u.data); this.sitesChanged(); },
      warning: (u) => { this.warnings.unshift(u.data); this.warnings = this.warnings.slice(0, 50); this.warningsChanged(); },
      link: (u) => { this.link = u.data; this.sitesChanged(); },
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
    this.alert();
    if (this.tab === "live") this.renderLive();
    if (this.tab === "warnings") this.renderWarnings();
  },

  sitesChanged() { if (this.tab === "live") this.renderSites(); },

  warningsChanged() {
    if (this.tab === "live") this.renderRecentWarnings();
    if (this.tab === "warnings") this.renderWarnings();
  },

  alert() {  // a new alarm always has a card: they rank first
    EG.alerting(this, [...this.alarms.values()].some((a) => a.police_state === "new"), "police.new");
  },

  alarmsChanged() {
    this.alert();
    if (this.tab === "live") this.renderAlarms();
  },

  setLive(data) {
    this.alarms = new Map(data.alarms.map((a) => [a.event_id, a]));
    this.openTotal = data.open_total;
    this.liveMax = data.live_max;
  },

  /* One alarm changed: keep the first liveMax; fetch the next ones when a card left room. */
  putAlarm(alarm, openTotal) {
    if (alarm.police_state === "resolved") this.alarms.delete(alarm.event_id);
    else this.alarms.set(alarm.event_id, alarm);
    if (typeof openTotal === "number") this.openTotal = openTotal;
    for (const extra of this.sorted().slice(this.liveMax)) this.alarms.delete(extra.event_id);
    if (this.alarms.size < Math.min(this.liveMax, this.openTotal)) this.refill();
    this.alarmsChanged();
  },

  refill() {
    if (this.refilling) return;
    this.refilling = (async () => {
      try {
        this.setLive(await EG.api("/api/live"));
        this.alarmsChanged();
      } catch (e) { /* the banner shows a lost connection; the next update tries again */ }
      this.refilling = null;
    })();
  },

  rank(a) { return [a.police_state === "new" ? 0 : 1, a.priority, a.raised_at || "", a.event_id]; },

  sorted() {  // as PoliceStore.live_alarms: not yet acknowledged first, then P1, then oldest
    return [...this.alarms.values()].sort((a, b) => {
      const [x, y] = [this.rank(a), this.rank(b)];
      for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
      return 0;
    });
  },

  renderLive() {
    this.sitesBox = EG.el("section", { id: "sites" });
    this.recentBox = EG.el("section", { id: "recent-warnings" });
    this.alarmsBox = EG.el("section", { class: "cards", id: "alarms" });
    this.noAlarms = EG.el("p", { id: "no-alarms", text: EG.t("live.none") });
    this.moreLink = EG.el("a", { id: "more-alarms", href: "#", onclick: (e) => { e.preventDefault(); this.select("history"); } });
    this.view.replaceChildren(this.sitesBox, this.recentBox, this.alarmsBox, this.noAlarms, this.moreLink);
    this.renderSites();
    this.renderRecentWarnings();
    this.renderAlarms();
  },

  renderRecentWarnings() {
    if (!this.recentBox) return;
    this.recentBox.replaceChildren(...this.warnings.slice(0, 3).map((w) => this.warningItem(w)));
    this.recentBox.classList.toggle("hidden", this.warnings.length === 0);
  },

  /* Only the cards whose alarm changed are built again; the others stay as they are. */
  renderAlarms() {
    if (!this.alarmsBox) return;
    const open = this.sorted();
    const shown = new Set(open.map((a) => a.event_id));
    for (const id of [...this.cards.keys()]) if (!shown.has(id)) this.cards.delete(id);
    const cards = open.map((alarm) => {
      const cached = this.cards.get(alarm.event_id);
      if (cached && cached.alarm === alarm) return cached.el;
      const el = this.card(alarm);
      this.cards.set(alarm.event_id, { alarm, el });
      return el;
    });
    const current = this.alarmsBox.children;
    if (current.length !== cards.length || cards.some((el, i) => current[i] !== el)) this.alarmsBox.replaceChildren(...cards);
    this.noAlarms.classList.toggle("hidden", cards.length > 0);
    const more = this.openTotal - cards.length;
    this.moreLink.classList.toggle("hidden", more <= 0);
    this.moreLink.textContent = more > 0 ? EG.t("live.more", { n: more }) : "";
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
      this.putAlarm(updated);
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
