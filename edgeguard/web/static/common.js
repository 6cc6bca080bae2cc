/* Shared by the control-room console and the police dashboard. Plain JavaScript, no build
   step and nothing fetched from the internet. Every text from the server is put into the page
   with textContent (never as HTML), so alarm texts cannot inject markup. */
"use strict";

const EG = {
  me: null,
  text: {},

  t(key, vars) {
    let s = EG.text[key] || key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, String(v));
    return s;
  },

  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  },

  async api(path, options) {
    const opts = Object.assign({ method: "GET" }, options || {});
    const init = { method: opts.method, credentials: "same-origin", headers: {} };
    if (opts.method !== "GET") {
      init.headers["X-CSRF-Token"] = EG.me ? EG.me.csrf : "";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body || {});
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      window.location.assign("/login?expired=1");
      throw new Error("not logged in");
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
    return data;
  },

  async init() {
    EG.me = await EG.api("/api/me");
    EG.text = EG.me.text;
    document.documentElement.lang = EG.me.user.language === "zh" ? "zh-CN" : "en";
    document.title = EG.t(`${EG.me.app}.title`);
  },

  pad(n) { return String(n).padStart(2, "0"); },

  time(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return `${d.getFullYear()}-${EG.pad(d.getMonth() + 1)}-${EG.pad(d.getDate())} ` +
      `${EG.pad(d.getHours())}:${EG.pad(d.getMinutes())}:${EG.pad(d.getSeconds())}`;
  },

  where(location) {
    if (!location) return "–";
    const parts = [location.building, location.floor, location.room].filter(Boolean);
    const label = location.label || location.id || "";
    if (label && !parts.includes(label)) parts.push(label);
    return parts.join(" · ") || "–";
  },

  kind(kind) { return EG.text[`kind.${kind}`] || kind; },

  // the alarm's progress in words: reset, else the police's latest, else delivery
  stateText(alarm) {
    if (alarm.state === "reset") return EG.t("state.reset");
    const words = [EG.t(`state.${alarm.state}`)];
    if (alarm.restored) words.push(EG.t("state.restored"));
    return words.join(" · ");
  },

  header(tabs, current, onSelect) {
    const nav = EG.el("nav", {});
    for (const [id, key] of tabs) {
      nav.append(EG.el("button", {
        class: id === current ? "current" : "", "data-tab": id, text: EG.t(key),
        onclick: () => onSelect(id),
      }));
    }
    const logout = EG.el("form", { method: "post", action: "/logout", class: "inline" },
      EG.el("input", { type: "hidden", name: "csrf", value: EG.me.csrf }),
      EG.el("button", { type: "submit", id: "logout", text: EG.t("nav.logout") }));
    const other = EG.me.user.language === "zh" ? "en" : "zh";
    const language = EG.el("button", {
      id: "language", text: EG.t("nav.language"),
      onclick: async () => {
        await EG.api("/api/me/language", { method: "POST", body: { language: other } });
        window.location.reload();
      },
    });
    return EG.el("header", { class: "bar" }, EG.el("h1", { text: EG.t(`${EG.me.app}.title`) }),
      nav, EG.el("span", { id: "alerting" }),
      EG.el("span", { class: "who", text: `${EG.me.user.display_name} (${EG.t(`users.${EG.me.user.role}`)})` }),
      language, logout);
  },

  /* Server-Sent Events with a banner while the link is down; EventSource reconnects itself. */
  live(path, handlers, banner) {
    const source = new EventSource(path);
    source.onopen = () => banner.classList.add("hidden");
    source.onerror = () => { banner.textContent = EG.t("error.offline"); banner.classList.remove("hidden"); };
    for (const [event, handler] of Object.entries(handlers)) {
      source.addEventListener(event, (e) => handler(JSON.parse(e.data)));
    }
    source.addEventListener("expired", () => window.location.assign("/login?expired=1"));
    return source;
  },

  /* The frame of a console page: header, link banner, sound button, view; on `page`. */
  mount(page, tabs) {
    if (EG.me.user.role === "admin") tabs.push(["users", "nav.users"]);
    page.tabs = tabs;
    page.banner = EG.el("div", { class: "banner hidden", id: "offline" });
    page.soundButton = EG.el("button", { class: "banner sound hidden", id: "sound-on", text: EG.t("live.sound_off") });
    page.view = EG.el("main", { class: "view", id: "view" });
    document.getElementById("app").append(EG.el("div", { id: "header" }), page.banner, page.soundButton, page.view);
    page.sound = new EG.Sound(page.soundButton);
  },

  /* The alarm sound and the header's blinking badge, on or off. */
  alerting(page, on, key) {
    page.sound.set(on);
    const badge = document.getElementById("alerting");
    if (badge) {
      badge.textContent = on ? `● ${EG.t(key)}` : "";
      badge.className = on ? "alerting-badge" : "";
    }
  },

  showError(error) {
    window.alert(`${EG.t("error.generic")}: ${error.message || error}`);
  },

  dialog(title, ...content) {
    const close = EG.el("button", { text: "×", class: "close" });
    const box = EG.el("dialog", {}, EG.el("h2", { text: title }), ...content,
      EG.el("div", { class: "actions" }, close));
    close.addEventListener("click", () => { box.close(); box.remove(); });
    document.body.append(box);
    box.showModal();
    return box;
  },
};

/* The audible alert: a two-tone beep every second while `on`. Browsers start audio only after
   the user has interacted with the page; until then a button offers to turn the sound on. */
EG.Sound = class {
  constructor(button) {
    this.button = button;
    this.on = false;
    this.context = null;
    this.timer = null;
    button.addEventListener("click", () => this.unlock());
  }

  unlock() {
    if (!this.context) this.context = new (window.AudioContext || window.webkitAudioContext)();
    this.context.resume().then(() => this.refresh());
  }

  set(on) {
    this.on = on;
    document.body.dataset.alerting = on ? "true" : "false";
    if (on && !this.context) this.unlock();
    this.refresh();
  }

  refresh() {
    const blocked = this.on && (!this.context || this.context.state !== "running");
    this.button.classList.toggle("hidden", !blocked);
    if (this.on && !this.timer) this.timer = setInterval(() => this.beep(), 1000);
    if (!this.on && this.timer) { clearInterval(this.timer); this.timer = null; }
  }

  beep() {
    if (!this.context || this.context.state !== "running") return;
    const now = this.context.currentTime;
    for (const [offset, freq] of [[0, 880], [0.25, 660]]) {
      const osc = this.context.createOscillator();
      const gain = this.context.createGain();
      osc.frequency.value = freq;
      gain.gain.value = 0.2;
      osc.connect(gain).connect(this.context.destination);
      osc.start(now + offset);
      osc.stop(now + offset + 0.2);
    }
  }
};

/* User management (admins): list, add, change role, set a password, delete. */
EG.usersView = async function (root) {
  root.replaceChildren();
  const { users } = await EG.api("/api/users");
  const rows = users.map((u) => EG.el("tr", { "data-user": u.name },
    EG.el("td", { text: u.name }), EG.el("td", { text: u.display_name }),
    EG.el("td", { text: EG.t(`users.${u.role}`) }), EG.el("td", { text: u.language }),
    EG.el("td", {}, EG.el("button", {
      class: "danger", text: EG.t("users.delete"),
      onclick: async () => {
        try { await EG.api(`/api/users/${encodeURIComponent(u.name)}/delete`, { method: "POST" }); }
        catch (e) { EG.showError(e); }
        EG.usersView(root);
      },
    }))));
  const name = EG.el("input", { name: "name", required: true, maxlength: 64 });
  const display = EG.el("input", { name: "display_name", maxlength: 100 });
  const password = EG.el("input", { name: "password", type: "password", minlength: 8 });
  const role = EG.el("select", { name: "role" },
    EG.el("option", { value: "operator", text: EG.t("users.operator") }),
    EG.el("option", { value: "admin", text: EG.t("users.admin") }));
  const form = EG.el("form", { class: "filters", id: "add-user" },
    EG.el("label", {}, EG.t("users.name"), name), EG.el("label", {}, EG.t("users.display_name"), display),
    EG.el("label", {}, EG.t("users.password"), password), EG.el("label", {}, EG.t("users.role"), role),
    EG.el("button", { type: "submit", class: "primary", text: EG.t("users.add") }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await EG.api("/api/users", { method: "POST", body: {
        name: name.value, display_name: display.value, password: password.value, role: role.value,
      } });
      EG.usersView(root);
    } catch (e) { EG.showError(e); }
  });
  root.append(EG.el("h2", { text: EG.t("nav.users") }), EG.el("table", { id: "users" },
    EG.el("tr", {}, ...["users.name", "users.display_name", "users.role", "users.language", ""]
      .map((k) => EG.el("th", { text: k ? EG.t(k) : "" }))), rows), form);
};
