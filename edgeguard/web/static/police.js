/* The police dashboard, for one station or a city: the summary of every hospital (online,
   lost, in alarm) and of the open alarms, the open alarms of all hospitals in priority order
   with their snapshots (acknowledge / dispatch / resolve), a searchable, paged list of the
   hospitals (those in alarm and lost first), history with CSV export, and security warnings
   (forged or unverifiable messages are shown here and never as alarms).

   The live stream starts with a bounded state (the summary, the first page of hospitals, the
   first open alarms) and then sends one delta per change: an alarm, one hospital, or the
   summary (at most once a second). The page applies each to what it shows, and fetches its
   page of hospitals again when the order may have changed. */
"use strict";

const SITE_STATES = ["alarm", "lost", "offline", "unknown", "online"];

const Police = {
  alarms: new Map(),  // the open alarms on cards: at most liveMax, ranked as the server does
  openTotal: 0,  // open alarms in all: the others are on the open-alarms pages
  liveMax: 100,
  cards: new Map(),  // event_id -> {alarm, el}: a card is built again only when its alarm changed
  summary: null,
  sitePage: { sites: [], total: 0, page: 1, per_page: 50 },
  siteQuery: { q: "", state: "", page: 1 },
  tiles: new Map(),  // site id -> {site, el}: as the cards
  names: new Map(),  // site id -> name, of every site seen (the cards' fallback)
  warnings: [],
  link: {},
  tab: "live",
  openPage: 1,

  async start() {
    await EG.init();
    EG.mount(this, [["live", "nav.live"], ["open", "nav.open"], ["history", "nav.history"], ["warnings", "nav.warnings"]]);
    this.select("live");
    const delta = (handler) => (u) => { if (u.gap) this.resync(); handler(u); };
    EG.live("/api/stream", {
      state: (u) => this.setState(u.data),
      alarm: delta((u) => this.putAlarm(u.data, u.open_total)),
      site: delta((u) => this.putSite(u.data)),
      summary: delta((u) => this.setSummary(u.data)),
      warning: delta((u) => { this.warnings.unshift(u.data); this.warnings = this.warnings.slice(0, 50); this.warningsChanged(); }),
      link: delta((u) => { this.link = u.data; this.renderSites(); }),
      resync: () => this.resync(),  // the server's own feed missed changes (PostgreSQL reconnected)
    }, this.banner);
    // heartbeat ages move on their own: the page of hospitals shown is fetched every 5 s
    setInterval(() => { if (this.tab === "live") this.fetchSites(); }, 5000);
  },

  select(tab) {
    this.tab = tab;
    document.getElementById("header").replaceChildren(EG.header(this.tabs, tab, (t) => this.select(t)));
    this.view.replaceChildren();
    this.sitesBox = this.alarmsBox = this.summaryBox = null;
    if (tab === "live") this.renderLive();
    if (tab === "open") this.renderOpen();
    if (tab === "history") this.renderHistory();
    if (tab === "warnings") this.renderWarnings();
    if (tab === "users") EG.usersView(this.view).catch(EG.showError);
  },

  setState(data) {
    this.setLive(data);
    this.summary = data.summary;
    const { q, state, page } = this.siteQuery;
    if (!q && !state && page === 1) this.setSites(data.sites);  // else the page asked for
    else this.fetchSites();
    this.warnings = data.warnings;
    this.link = data.link;
    this.alert();
    if (this.tab === "live") this.renderLive();
    if (this.tab === "warnings") this.renderWarnings();
  },

  /* After a gap (this page, or the server's feed, fell behind): what is shown is fetched again. */
  resync() {
    this.refill();
    this.fetchSites();
    EG.api("/api/summary").then(({ summary }) => this.setSummary(summary)).catch(() => {});
  },

  // --- the summary ---------------------------------------------------------------------------
  setSummary(summary) {
    const before = JSON.stringify(this.summary && this.summary.sites);
    this.summary = summary;
    this.openTotal = summary.alarms.open;
    if (JSON.stringify(summary.sites) !== before) this.fetchSitesSoon();  // the order may differ
    if (this.alarms.size < Math.min(this.liveMax, this.openTotal)) this.refill();
    this.renderSummary();
    this.renderAlarms();
  },

  renderSummary() {
    if (!this.summaryBox || !this.summary) return;
    const { sites, alarms } = this.summary;
    const chip = (state, n, key) => EG.el("button", {
      class: `chip ${state}${this.siteQuery.state === state ? " current" : ""}`, "data-filter": state,
      onclick: () => this.filterSites(this.siteQuery.state === state ? "" : state),
    }, EG.el("span", { class: "n", "data-count": state, text: String(n) }), " ", EG.t(key));
    const priorities = Object.entries(alarms.by_priority).map(([p, n]) =>
      EG.el("span", { class: `prio p${p}`, "data-priority": p, text: `P${p} ${n}` }));
    this.summaryBox.replaceChildren(
      EG.el("button", { class: `chip total${this.siteQuery.state === "" ? " current" : ""}`, "data-filter": "", onclick: () => this.filterSites("") },
        EG.el("span", { class: "n", "data-count": "total", text: String(sites.total) }), " ", EG.t("summary.sites")),
      chip("alarm", sites.in_alarm, "summary.in_alarm"),
      chip("lost", sites.lost, "site.lost"), chip("offline", sites.offline, "site.offline"),
      chip("unknown", sites.unknown, "site.unknown"), chip("online", sites.online, "site.online"),
      EG.el("span", { class: "chip alarms", id: "summary-alarms" },
        EG.el("span", { class: "n", "data-count": "open", text: String(alarms.open) }), ` ${EG.t("summary.open")} · `,
        EG.el("span", { class: "n", "data-count": "new", text: String(alarms.new) }), ` ${EG.t("summary.new")} `, ...priorities));
  },

  // --- the hospitals: a page at a time --------------------------------------------------------
  setSites(page) {
    const before = new Map(this.sitePage.sites.map((s) => [s.id, s]));
    page.sites = page.sites.map((s) => {  // a hospital that did not change keeps its tile
      const old = before.get(s.id);
      return old && JSON.stringify(old) === JSON.stringify(s) ? old : s;
    });
    this.sitePage = page;
    for (const s of page.sites) this.names.set(s.id, s.name || s.id);
    this.renderSites();
  },

  siteURL() {
    const q = new URLSearchParams({ page: String(this.siteQuery.page), per_page: String(this.sitePage.per_page || 50) });
    if (this.siteQuery.q) q.set("q", this.siteQuery.q);
    if (this.siteQuery.state) q.set("state", this.siteQuery.state);
    return `/api/sites?${q}`;
  },

  async fetchSites() {
    const url = this.siteURL();
    try {
      const found = await EG.api(url);
      if (url !== this.siteURL()) return;  // the search changed meanwhile: its own answer comes
      this.link = found.link;
      this.setSites(found);
    } catch (e) { /* the banner shows a lost connection */ }
  },

  fetchSitesSoon() {  // at most one fetch a second, however many changes come
    if (this.sitesTimer) return;
    this.sitesTimer = setTimeout(() => { this.sitesTimer = null; this.fetchSites(); }, 1000);
  },

  filterSites(state) {
    this.siteQuery = { ...this.siteQuery, state, page: 1 };
    if (this.stateSelect) this.stateSelect.value = state;
    this.renderSummary();
    this.fetchSites();
  },

  /* One hospital changed: its tile is updated in place; when it may have moved in the order
     (its state or alarm changed, or a hospital not shown left "online"), the page comes again. */
  putSite(site) {
    this.names.set(site.id, site.name || site.id);
    const rows = this.sitePage.sites;
    const index = rows.findIndex((s) => s.id === site.id);
    if (index >= 0) {
      const old = rows[index];
      rows[index] = { ...old, ...site };
      if (old.state !== site.state || Boolean(old.in_alarm) !== Boolean(site.in_alarm)) this.fetchSitesSoon();
      this.renderSites();
    } else if (site.state !== "online" || site.in_alarm) {
      this.fetchSitesSoon();
    }
  },

  tile(s) {
    const state = s.state || "unknown";
    const age = s.heartbeat_age_s === null || s.heartbeat_age_s === undefined ? "–" : `${s.heartbeat_age_s} s`;
    return EG.el("div", { class: `site ${state}${s.in_alarm ? " in-alarm" : ""}`, "data-site": s.id, "data-state": state, "data-in-alarm": s.in_alarm ? "true" : "false" },
      EG.el("strong", { text: s.name || s.id }), s.name && s.name !== s.id ? EG.el("span", { class: "meta", text: ` ${s.id}` }) : null, EG.el("br"),
      EG.el("span", { class: state === "online" ? "ok" : "bad", "data-role": "site-state", text: EG.t(`site.${state}`) }),
      ` · ${EG.t("site.heartbeat_age")} ${age}`,
      s.police_open ? EG.el("div", { class: "bad", "data-role": "site-alarms", text: EG.t("sites.open_alarms", { n: s.police_open }) }) : null,
      s.reason ? EG.el("div", { class: "meta", text: s.reason }) : null,
      s.alert ? EG.el("div", { class: "warnc", text: s.alert }) : null);
  },

  renderSites() {
    if (!this.sitesBox) return;
    const link = this.link || {};
    const shown = new Set(this.sitePage.sites.map((s) => s.id));
    for (const id of [...this.tiles.keys()]) if (!shown.has(id)) this.tiles.delete(id);
    const tiles = this.sitePage.sites.map((s) => {
      const cached = this.tiles.get(s.id);
      if (cached && cached.site === s) return cached.el;
      const el = this.tile(s);
      this.tiles.set(s.id, { site: s, el });
      return el;
    });
    const linkDown = link.connected === false
      ? EG.el("div", { class: "banner", id: "broker-down", text: `${EG.t("site.broker_down")}: ${link.last_error || ""}` }) : null;
    this.linkBox.replaceChildren(...(linkDown ? [linkDown] : []));
    const current = this.sitesBox.children;
    if (current.length !== tiles.length || tiles.some((el, i) => current[i] !== el)) this.sitesBox.replaceChildren(...tiles);
    this.sitesNone.classList.toggle("hidden", tiles.length > 0);
    const { page, per_page: perPage, total } = this.sitePage;
    const pages = Math.max(1, Math.ceil(total / perPage));
    this.sitesPageText.textContent = EG.t("sites.page", { page, pages, total });
    this.sitesPrev.disabled = page <= 1;
    this.sitesNext.disabled = page >= pages;
  },

  sitesPanel() {
    this.searchBox = EG.el("input", { id: "site-search", type: "search", maxlength: 64, value: this.siteQuery.q, placeholder: EG.t("sites.search"), "aria-label": EG.t("sites.search") });
    this.searchBox.addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => {
        this.siteQuery = { ...this.siteQuery, q: this.searchBox.value.trim(), page: 1 };
        this.fetchSites();
      }, 250);
    });
    this.stateSelect = EG.el("select", { id: "site-state", "aria-label": EG.t("history.state") },
      EG.el("option", { value: "", text: EG.t("sites.all") }),
      SITE_STATES.map((s) => EG.el("option", { value: s, text: s === "alarm" ? EG.t("summary.in_alarm") : EG.t(`site.${s}`) })));
    this.stateSelect.value = this.siteQuery.state;
    this.stateSelect.addEventListener("change", () => this.filterSites(this.stateSelect.value));
    const turn = (by) => { this.siteQuery = { ...this.siteQuery, page: Math.max(1, this.siteQuery.page + by) }; this.fetchSites(); };
    this.sitesPrev = EG.el("button", { id: "sites-prev", text: EG.t("pager.prev"), onclick: () => turn(-1) });
    this.sitesNext = EG.el("button", { id: "sites-next", text: EG.t("pager.next"), onclick: () => turn(1) });
    this.sitesPageText = EG.el("span", { id: "sites-page" });
    this.sitesNone = EG.el("p", { id: "no-sites", class: "hidden", text: EG.t("sites.none") });
    this.sitesBox = EG.el("div", { id: "sites" });
    return EG.el("section", { id: "sites-panel" },
      EG.el("form", { class: "filters", id: "site-filters", onsubmit: (e) => e.preventDefault() }, this.searchBox, this.stateSelect),
      this.sitesBox, this.sitesNone,
      EG.el("div", { class: "pager", id: "site-pager" }, this.sitesPrev, this.sitesPageText, this.sitesNext));
  },

  // --- the open alarms' cards ---------------------------------------------------------------
  alert() {  // a new alarm always has a card: they rank first
    EG.alerting(this, [...this.alarms.values()].some((a) => a.police_state === "new"), "police.new");
  },

  alarmsChanged() {
    this.alert();
    this.renderAlarms();
    if (this.tab === "open") this.fetchOpenSoon();
  },

  setLive(data) {
    this.alarms = new Map(data.alarms.map((a) => [a.event_id, a]));
    for (const a of data.alarms) if (a.site_name) this.names.set(a.site, a.site_name);
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
    this.summaryBox = EG.el("section", { id: "summary", class: "summary" });
    this.linkBox = EG.el("div", { id: "link" });
    this.recentBox = EG.el("section", { id: "recent-warnings" });
    this.alarmsBox = EG.el("section", { class: "cards", id: "alarms" });
    this.noAlarms = EG.el("p", { id: "no-alarms", text: EG.t("live.none") });
    this.moreLink = EG.el("a", { id: "more-alarms", href: "#", onclick: (e) => { e.preventDefault(); this.select("open"); } });
    this.view.replaceChildren(this.summaryBox, this.linkBox, this.recentBox, this.alarmsBox, this.noAlarms, this.moreLink,
      EG.el("h2", { text: EG.t("nav.sites") }), this.sitesPanel());
    this.renderSummary();
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
    this.moreLink.textContent = more > 0 ? EG.t("live.more_open", { n: more }) : "";
  },

  actionButtons(alarm) {
    const done = ["acknowledged", "dispatched", "resolved"];
    const reached = done.indexOf(alarm.police_state);
    const button = (action, state, key) => EG.el("button", {
      class: action === "ack" ? "primary" : "", "data-action": action, text: EG.t(key),
      disabled: done.indexOf(state) <= reached, onclick: (e) => { e.stopPropagation(); this.act(alarm, action); },
    });
    return [button("ack", "acknowledged", "alarm.ack"), button("dispatch", "dispatched", "alarm.dispatch"),
      button("resolve", "resolved", "alarm.resolve")];
  },

  policeState(alarm) {
    return alarm.police_state === "new" ? EG.t("police.new") : `${EG.t(`state.${alarm.police_state}`)} · ${alarm.police_by || ""}`;
  },

  siteName(alarm) { return alarm.site_name || this.names.get(alarm.site) || alarm.site; },

  card(alarm) {
    return EG.el("article", { class: `card p${alarm.priority}`, "data-event-id": alarm.event_id, "data-police-state": alarm.police_state },
      EG.el("h3", { text: `${EG.kind(alarm.kind)} · P${alarm.priority}` }),
      EG.el("div", { class: "where", text: `${this.siteName(alarm)} · ${EG.where(alarm.location)}` }),
      EG.el("div", { class: "meta", text: `${EG.t("alarm.when")}: ${EG.time(alarm.raised_at)} · ${EG.t("alarm.source")}: ${alarm.source}` }),
      EG.el("span", { class: "state", text: alarm.site_state ? EG.t(`state.${alarm.site_state}`) : "" }), " ",
      EG.el("span", { class: "state police", "data-role": "police-state", text: this.policeState(alarm) }),
      EG.el("div", { class: "snaps" }, (alarm.snapshots || []).map((s) => EG.el("a", { href: s.url, target: "_blank" },
        EG.el("img", { src: s.url, alt: s.camera, title: s.camera, "data-camera": s.camera })))),
      EG.el("div", { class: "actions" }, ...this.actionButtons(alarm),
        EG.el("button", { "data-action": "details", text: EG.t("alarm.details"), onclick: () => this.details(alarm.event_id) })));
  },

  async act(alarm, action) {
    try {
      const { alarm: updated } = await EG.api(`/api/alarms/${alarm.event_id}/${action}`, { method: "POST" });
      this.putAlarm(updated);
    } catch (e) { EG.showError(e); }
  },

  // --- every open alarm, a page at a time -----------------------------------------------------
  renderOpen() {
    this.openBox = EG.el("div", { id: "open-alarms" });
    this.view.replaceChildren(EG.el("h2", { text: EG.t("nav.open") }), this.openBox);
    this.fetchOpen();
  },

  fetchOpenSoon() {
    if (this.openTimer) return;
    this.openTimer = setTimeout(() => { this.openTimer = null; if (this.tab === "open") this.fetchOpen(); }, 1000);
  },

  async fetchOpen() {
    try {
      const found = await EG.api(`/api/alarms/open?page=${this.openPage}&per_page=50`);
      const pages = Math.max(1, Math.ceil(found.total / found.per_page));
      if (this.openPage > pages) { this.openPage = pages; return this.fetchOpen(); }
      const turn = (by) => { this.openPage += by; this.fetchOpen(); };
      const rows = found.alarms.map((a) => EG.el("tr", { class: `clickable p${a.priority}`, "data-event-id": a.event_id, "data-police-state": a.police_state, onclick: () => this.details(a.event_id) },
        EG.el("td", { text: `P${a.priority}` }), EG.el("td", { text: EG.time(a.raised_at) }), EG.el("td", { text: this.siteName(a) }),
        EG.el("td", { text: EG.kind(a.kind) }), EG.el("td", { text: EG.where(a.location) }),
        EG.el("td", { "data-role": "police-state", text: this.policeState(a) }), EG.el("td", { class: "actions" }, ...this.actionButtons(a))));
      if (!this.openBox) return;
      this.openBox.replaceChildren(found.alarms.length ? EG.el("table", {},
        EG.el("tr", {}, ["alarm.priority", "alarm.when", "alarm.site", "alarm.kind", "alarm.where", "alarm.state", ""].map((k) => EG.el("th", { text: k ? EG.t(k) : "" }))),
        rows) : EG.el("p", { text: EG.t("live.none") }),
      EG.el("div", { class: "pager", id: "open-pager" },
        EG.el("button", { id: "open-prev", text: EG.t("pager.prev"), disabled: found.page <= 1, onclick: () => turn(-1) }),
        EG.el("span", { id: "open-page", text: EG.t("open.page", { page: found.page, pages, total: found.total }) }),
        EG.el("button", { id: "open-next", text: EG.t("pager.next"), disabled: found.page >= pages, onclick: () => turn(1) })));
    } catch (e) { EG.showError(e); }
    return null;
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

  // --- warnings and history -----------------------------------------------------------------
  warningsChanged() {
    if (this.tab === "live") this.renderRecentWarnings();
    if (this.tab === "warnings") this.renderWarnings();
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
    const site = EG.el("input", { name: "site", maxlength: 64, placeholder: EG.t("history.site_id") });
    const state = EG.el("select", { name: "state" }, EG.el("option", { value: "", text: EG.t("history.any") }),
      ["new", "acknowledged", "dispatched", "resolved"].map((s) => EG.el("option", { value: s, text: s === "new" ? EG.t("police.new") : EG.t(`state.${s}`) })));
    const results = EG.el("div", { id: "history" });
    const query = () => {
      const q = new URLSearchParams();
      const iso = (v) => (v ? new Date(v).toISOString() : "");
      for (const [k, v] of [["since", iso(since.value)], ["until", iso(until.value)], ["site", site.value.trim()], ["state", state.value]]) if (v) q.set(k, v);
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
