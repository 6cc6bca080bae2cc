/* The control-room console: live alarms (all shown, the most urgent first, and cycled in turn
   in the featured panel as GB 50394 asks), reset, local acknowledgement that silences the
   alarm sound, history with CSV export, an event's timeline and evidence, and health. */
"use strict";

const Console = {
  alarms: new Map(),
  tab: "live",
  cycleIndex: 0,
  healthTimer: null,

  async start() {
    await EG.init();
    EG.mount(this, [["live", "nav.live"], ["history", "nav.history"], ["health", "nav.health"]]);
    this.select("live");
    EG.live("/api/stream", {
      state: (u) => { this.alarms = new Map(u.data.alarms.map((a) => [a.event_id, a])); this.changed(); },
      alarm: (u) => this.update(u.data),
    }, this.banner);
    setInterval(() => { this.cycleIndex += 1; if (this.tab === "live") this.renderFeatured(); }, 5000);
  },

  select(tab) {
    this.tab = tab;
    document.getElementById("header").replaceChildren(EG.header(this.tabs, tab, (t) => this.select(t)));
    clearInterval(this.healthTimer);
    this.view.replaceChildren();
    if (tab === "live") this.renderLive();
    if (tab === "history") this.renderHistory();
    if (tab === "health") { this.renderHealth(); this.healthTimer = setInterval(() => this.renderHealth(), 3000); }
    if (tab === "users") EG.usersView(this.view).catch(EG.showError);
  },

  update(alarm) {
    if (alarm.state === "reset") this.alarms.delete(alarm.event_id);
    else {
      const known = this.alarms.get(alarm.event_id);
      if (known && known.local_ack && !alarm.local_ack) alarm.local_ack = known.local_ack;
      this.alarms.set(alarm.event_id, alarm);
    }
    this.changed();
  },

  changed() {
    const open = this.sorted();
    EG.alerting(this, open.some((a) => !a.local_ack), "live.alerting");
    if (this.tab === "live") this.renderLive();
  },

  sorted() {
    return [...this.alarms.values()].sort((a, b) =>
      a.priority - b.priority || (a.occurred_at < b.occurred_at ? -1 : 1));
  },

  renderLive() {
    const open = this.sorted();
    this.featured = EG.el("section", { id: "featured" });
    const cards = EG.el("section", { class: "cards", id: "alarms" }, open.map((a) => this.card(a)));
    this.view.replaceChildren(this.featured, open.length ? cards : EG.el("p", { id: "no-alarms", text: EG.t("live.none") }));
    this.renderFeatured();
  },

  // Several alarms are shown in turn: the featured panel steps through them every 5 s,
  // P1 alarms first (all of them are in the list below at the same time).
  renderFeatured() {
    if (!this.featured) return;
    const open = this.sorted();
    if (!open.length) { this.featured.replaceChildren(); this.featured.className = ""; return; }
    const index = this.cycleIndex % open.length;
    const alarm = open[index];
    this.featured.className = "featured";
    this.featured.dataset.eventId = alarm.event_id;
    this.featured.replaceChildren(
      EG.el("span", { class: "cycle", text: EG.t("live.cycle", { n: index + 1, total: open.length }) }),
      EG.el("h2", { text: `${EG.kind(alarm.kind)} — ${EG.where(alarm.location)}` }),
      EG.el("div", { class: "meta", text: `${EG.time(alarm.occurred_at)} · P${alarm.priority} · ${alarm.source}` }),
      this.snapshots(alarm));
  },

  card(alarm) {
    const police = ["acknowledged", "dispatched", "resolved"].includes(alarm.state);
    return EG.el("article", { class: `card p${alarm.priority}`, "data-event-id": alarm.event_id, "data-state": alarm.state },
      EG.el("h3", { text: `${EG.kind(alarm.kind)} · P${alarm.priority}` }),
      EG.el("div", { class: "where", text: EG.where(alarm.location) }),
      EG.el("div", { class: "meta", text: `${EG.t("alarm.when")}: ${EG.time(alarm.occurred_at)} · ${EG.t("alarm.source")}: ${alarm.source}` }),
      EG.el("span", { class: `state${police ? " police" : ""}`, "data-role": "state", text: EG.stateText(alarm) }),
      alarm.local_ack ? EG.el("span", { class: "state acked", text: ` ${EG.t("alarm.local_acked")}: ${alarm.local_ack.by}` }) : null,
      this.snapshots(alarm),
      EG.el("div", { class: "actions" },
        alarm.local_ack ? null : EG.el("button", { class: "primary", "data-action": "ack-local", text: EG.t("alarm.local_ack"), onclick: () => this.act(alarm, "ack-local") }),
        EG.el("button", { class: "danger", "data-action": "reset", text: EG.t("alarm.reset"), onclick: () => this.reset(alarm) }),
        EG.el("button", { "data-action": "details", text: EG.t("alarm.details"), onclick: () => this.details(alarm.event_id) })));
  },

  snapshots(alarm) {
    const items = (alarm.snapshots || []).map((s) => (s.url
      ? EG.el("a", { href: s.url, target: "_blank" }, EG.el("img", { src: s.url, alt: s.camera, title: s.camera, "data-camera": s.camera }))
      : EG.el("span", { class: "none", text: `${s.camera}: ${EG.t("alarm.no_snapshot")}` })));
    return EG.el("div", { class: "snaps" }, items);
  },

  async act(alarm, action) {
    try {
      const { alarm: updated } = await EG.api(`/api/alarms/${alarm.event_id}/${action}`, { method: "POST" });
      this.update(updated);
    } catch (e) { EG.showError(e); }
  },

  async reset(alarm) {
    if (!window.confirm(`${EG.t("alarm.reset_confirm")}\n${EG.kind(alarm.kind)} — ${EG.where(alarm.location)}`)) return;
    await this.act(alarm, "reset");
  },

  async details(eventId) {
    try {
      const { alarm } = await EG.api(`/api/alarms/${eventId}`);
      const rows = alarm.timeline.map((row) => {
        const data = JSON.parse(row.data || "{}");
        return EG.el("tr", { "data-type": row.type }, EG.el("td", { text: EG.time(row.recorded_at) }),
          EG.el("td", { text: EG.text[`ledger.${row.type}`] || row.type }),
          EG.el("td", { text: row.state || "" }), EG.el("td", { text: data.by || "" }));
      });
      const evidence = (alarm.evidence_files || []).map((e) => EG.el("li", {},
        EG.el("a", { href: `/api/evidence/${eventId}/${e.camera}/${e.kind}`, target: "_blank", text: `${e.kind} · ${e.camera} · ${EG.time(e.taken_at)}` }),
        ` sha256 ${String(e.sha256).slice(0, 16)}…`));
      EG.dialog(`${EG.kind(alarm.kind)} — ${EG.where(alarm.location)}`,
        EG.el("p", { text: `${EG.stateText(alarm)} · ${alarm.event_id}` }),
        EG.el("h3", { text: EG.t("alarm.timeline") }),
        EG.el("table", { id: "timeline" }, EG.el("tr", {}, ["alarm.when", "alarm.kind", "alarm.state", "alarm.by"].map((k) => EG.el("th", { text: EG.t(k) }))), rows),
        EG.el("h3", { text: EG.t("alarm.evidence") }), this.snapshots(alarm), EG.el("ul", {}, evidence));
    } catch (e) { EG.showError(e); }
  },

  renderHistory() {
    const field = (name, type) => EG.el("input", { name, type });
    const since = field("since", "datetime-local");
    const until = field("until", "datetime-local");
    const kind = EG.el("select", { name: "kind" }, EG.el("option", { value: "", text: EG.t("history.any") }),
      ["panic", "duress", "intrusion", "crowd", "loitering", "camera_tamper", "camera_offline", "device_fault", "test"]
        .map((k) => EG.el("option", { value: k, text: EG.kind(k) })));
    const location = field("location", "text");
    const state = EG.el("select", { name: "state" }, EG.el("option", { value: "", text: EG.t("history.any") }),
      ["active", "delivered", "received", "acknowledged", "dispatched", "resolved", "reset"].map((s) => EG.el("option", { value: s, text: EG.t(`state.${s}`) })));
    const results = EG.el("div", { id: "history" });
    const query = () => {
      const q = new URLSearchParams();
      const iso = (v) => (v ? new Date(v).toISOString() : "");
      for (const [k, v] of [["since", iso(since.value)], ["until", iso(until.value)], ["kind", kind.value], ["location", location.value], ["state", state.value]]) {
        if (v) q.set(k, v);
      }
      return q.toString();
    };
    const search = async () => {
      try {
        const { alarms } = await EG.api(`/api/alarms?${query()}`);
        results.replaceChildren(alarms.length ? EG.el("table", {}, EG.el("tr", {},
          ["alarm.when", "alarm.kind", "alarm.where", "alarm.state", "alarm.by"].map((k) => EG.el("th", { text: EG.t(k) }))),
        alarms.map((a) => EG.el("tr", { class: "clickable", "data-event-id": a.event_id, onclick: () => this.details(a.event_id) },
          EG.el("td", { text: EG.time(a.occurred_at) }), EG.el("td", { text: EG.kind(a.kind) }),
          EG.el("td", { text: EG.where(a.location) }), EG.el("td", { text: EG.stateText(a) }),
          EG.el("td", { text: a.reset_by || "" })))) : EG.el("p", { text: EG.t("history.none") }));
      } catch (e) { EG.showError(e); }
    };
    const form = EG.el("form", { class: "filters", id: "history-filters" },
      EG.el("label", {}, EG.t("history.from"), since), EG.el("label", {}, EG.t("history.to"), until),
      EG.el("label", {}, EG.t("history.kind"), kind), EG.el("label", {}, EG.t("history.location"), location),
      EG.el("label", {}, EG.t("history.state"), state),
      EG.el("button", { type: "submit", class: "primary", text: EG.t("history.search") }),
      EG.el("button", { type: "button", id: "export-alarms", text: EG.t("history.export"), onclick: () => window.location.assign(`/api/alarms.csv?${query()}`) }),
      EG.el("button", { type: "button", id: "export-ledger", text: EG.t("history.export_ledger"), onclick: () => window.location.assign(`/api/ledger.csv?${query()}`) }));
    form.addEventListener("submit", (e) => { e.preventDefault(); search(); });
    this.view.replaceChildren(form, results);
    search();
  },

  async renderHealth() {
    let h;
    try { h = await EG.api("/api/health"); } catch (e) { return; }
    if (this.tab !== "health") return;
    const link = h.link || {};
    const yes = (ok, good, bad) => EG.el("span", { class: ok ? "ok" : "bad", text: ok ? EG.t(good) : EG.t(bad) });
    const table = (id, head, rows) => EG.el("table", { id }, EG.el("tr", {}, head.map((k) => EG.el("th", { text: k }))), rows);
    const cameras = Object.entries(h.cameras || {}).map(([name, c]) => EG.el("tr", { "data-camera": name },
      EG.el("td", { text: name }), EG.el("td", {}, yes(c.state === "online", "health.online", c.state === "offline" ? "health.offline" : "health.fault")),
      EG.el("td", { text: c.fps_in !== undefined ? `${c.fps_in} / ${c.fps_out}` : "" }),
      EG.el("td", { text: c.last_frame_age_s !== undefined && c.last_frame_age_s !== null ? `${c.last_frame_age_s} s` : "" }),
      EG.el("td", { text: c.reconnects_1h ?? "" })));
    const devices = (h.devices || []).map((d) => EG.el("tr", { "data-device": d.device },
      EG.el("td", { text: d.device }), EG.el("td", {}, yes(d.state === "ok" || d.state === "online", "health.online", "health.fault")),
      EG.el("td", { text: EG.time(d.updated_at) })));
    const coverage = (h.coverage || []).map((c) => EG.el("tr", {},
      EG.el("td", { text: c.key_area }), EG.el("td", { text: (c.cameras || []).map((x) => `${x.name} (${x.state})`).join(", ") }),
      EG.el("td", {}, yes(c.covered, "health.covered", "health.not_covered"))));
    const heartbeat = h.heartbeat || {};
    this.view.replaceChildren(
      EG.el("p", { id: "police-link" }, `${EG.t("health.police_link")}: `, yes(link.connected, "health.up", "health.down"),
        ` ${link.broker || ""} · ${EG.time(link.since)}${link.last_error ? ` · ${link.last_error}` : ""}`),
      EG.el("p", { id: "heartbeat", text: `${EG.t("health.last_heartbeat")}: ${EG.time(heartbeat.last_at)} (#${heartbeat.count || 0})` }),
      EG.el("h3", { text: EG.t("health.cameras") }), table("cameras", [EG.t("health.cameras"), EG.t("alarm.state"), EG.t("health.fps"), EG.t("health.frame_age"), EG.t("health.reconnects")], cameras),
      EG.el("h3", { text: EG.t("health.devices") }), table("devices", [EG.t("health.devices"), EG.t("alarm.state"), EG.t("alarm.when")], devices),
      EG.el("h3", { text: EG.t("health.coverage") }), table("coverage", [EG.t("health.coverage"), EG.t("health.cameras"), ""], coverage));
  },
};

Console.start().catch((e) => { document.getElementById("app").textContent = String(e); });
