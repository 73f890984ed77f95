/*
 * 政务服务智能导办助手 · 网站嵌入式对话窗口 (the embeddable website chat widget).
 *
 * One tag embeds it:
 *
 *   <script src="https://助手地址/webhooks/guide/widget.js" defer></script>
 *
 * Optional attributes on that tag: data-title (the panel's title), data-greeting (the first
 * message), data-open="true" (open on a first visit), data-server (the assistant's base address
 * when it is not where the script came from), data-suggestions ("问题一|问题二"; empty for none).
 *
 * It talks to the assistant's JSON channel (POST /webhooks/guide/webhook). Everything lives in
 * an open shadow root, styled by widget.css from the same address as this script: no fonts,
 * images or scripts from anywhere else (mainland networks block Google's fonts and the public
 * CDNs). Message content only ever reaches the page as text (textContent / createElement), never
 * as HTML. The conversation id and the transcript are kept in localStorage, so a reload keeps the
 * conversation; an unsent message stays queued and is retried until the network comes back.
 *
 * Public API: window.GuideWidget.open(), .close(), .send(text).
 */
(function () {
  "use strict";

  if (window.GuideWidget && window.GuideWidget.version) {
    return; // the tag was included twice: one widget is enough
  }

  var script = document.currentScript ||
    document.querySelector('script[src*="/webhooks/guide/widget.js"]');
  var scriptUrl = (script && script.src) || location.href;

  function attr(name) {
    var value = script ? script.getAttribute("data-" + name) : null;
    return value === null ? null : String(value);
  }

  var server = (attr("server") || "").trim().replace(/\/+$/, "");
  var WEBHOOK = server ? server + "/webhooks/guide/webhook" : new URL("webhook", scriptUrl).href;
  var STYLESHEET = new URL("widget.css", scriptUrl).href;
  var TITLE = (attr("title") || "").trim() || "政务服务智能导办";
  var GREETING = (attr("greeting") || "").trim() ||
    "您好！我是政务服务智能导办助手。请直接说您要办的事，例如“我身份证过期了怎么办”，" +
    "我会把要带的材料、办理地点、时限和费用一次告诉您。\n为保护您的隐私，请不要输入身份证号、银行卡号等信息。";
  var suggestionsAttr = attr("suggestions");
  var SUGGESTIONS = (suggestionsAttr === null
    ? "我身份证过期了怎么办|生了孩子要办哪些手续|开个小卖部要办什么证"
    : suggestionsAttr).split("|").map(function (s) { return s.trim(); }).filter(Boolean).slice(0, 6);
  var OPEN_AT_FIRST_VISIT = attr("open") === "true";

  var KEY = "guide-widget:" + WEBHOOK;
  var MAX_ENTRIES = 100;
  var MAX_MESSAGE = 2000;
  var TIMEOUT_MS = 90000;
  var SENDER_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;

  var KIND_LABELS = {
    notification: "完整的一次性告知",
    aspect: "单项解答",
    life_event: "一件事一次办",
    candidates: "可能要办的事项",
    which_item: "请先选择事项",
    not_found: "没有找到对应事项",
    off_topic: "不属于办事咨询",
    empty: "提示",
    unavailable: "暂时无法回答"
  };

  // --- storage -----------------------------------------------------------------------------

  var storage = (function () {
    try {
      var s = window.localStorage;
      s.setItem(KEY + ":probe", "1");
      s.removeItem(KEY + ":probe");
      return s;
    } catch (e) {
      return null; // storage disabled (private mode, sandboxed frame): the session lasts the page
    }
  })();

  function newSender() {
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return "web-" + Array.prototype.map.call(bytes, function (b) {
      return (b < 16 ? "0" : "") + b.toString(16);
    }).join("");
  }

  function cleanButtons(list) {
    if (!Array.isArray(list)) return [];
    return list.filter(function (b) {
      return b && typeof b.title === "string" && typeof b.payload === "string" && b.title && b.payload;
    }).slice(0, 24).map(function (b) {
      return { title: b.title.slice(0, 200), payload: b.payload.slice(0, MAX_MESSAGE) };
    });
  }

  function str(value, limit) { return typeof value === "string" ? value.slice(0, limit) : ""; }

  /** A notification's sections (bot/contract.py), checked field by field: headings, lines, and the
   *  materials as a checklist with their form, count and 容缺/承诺 flags. */
  function cleanSections(list) {
    if (!Array.isArray(list)) return [];
    return list.filter(function (s) { return s && typeof s === "object" && typeof s.heading === "string"; })
      .slice(0, 20).map(function (s) {
        return {
          key: str(s.key, 40), heading: str(s.heading, 40),
          lines: (Array.isArray(s.lines) ? s.lines : []).filter(function (l) { return typeof l === "string"; })
            .slice(0, 60).map(function (l) { return l.slice(0, 1000); }),
          materials: (Array.isArray(s.materials) ? s.materials : []).filter(function (m) {
            return m && typeof m === "object" && typeof m.name === "string";
          }).slice(0, 60).map(function (m) {
            return { name: str(m.name, 300), form: str(m.form, 40), note: str(m.note, 500),
              copies: typeof m.copies === "number" && m.copies > 0 ? Math.floor(m.copies) : 0,
              required: m.required !== false, deferrable: m.deferrable === true, promise_ok: m.promise_ok === true };
          })
        };
      });
  }

  /** A stored entry, checked field by field: storage is another page's to write too. */
  function cleanEntry(e) {
    if (!e || typeof e !== "object" || ["user", "bot", "notice"].indexOf(e.role) < 0) return null;
    var entry = { id: typeof e.id === "string" ? e.id : nextId(), role: e.role, text: typeof e.text === "string" ? e.text : "" };
    var buttons = cleanButtons(e.buttons);
    if (buttons.length) entry.buttons = buttons;
    if (e.used === true) entry.used = true;
    if (e.local === true) entry.local = true;
    if (["unavailable", "error"].indexOf(e.tone) >= 0) entry.tone = e.tone;
    if (["queued", "failed"].indexOf(e.status) >= 0) entry.status = e.status;
    var sections = cleanSections(e.sections);
    if (sections.length) {
      entry.sections = sections;
      entry.title = typeof e.title === "string" ? e.title.slice(0, 200) : "";
    }
    if (e.card && typeof e.card === "object" && safeUrl(e.card.url)) {
      entry.card = { url: safeUrl(e.card.url), kind: typeof e.card.kind === "string" ? e.card.kind : "",
        title: typeof e.card.title === "string" ? e.card.title : "" };
    }
    return entry;
  }

  function loadState() {
    var raw = null;
    try {
      raw = storage ? JSON.parse(storage.getItem(KEY) || "null") : null;
    } catch (e) {
      raw = null;
    }
    if (!raw || typeof raw !== "object" || typeof raw.sender !== "string" || !SENDER_RE.test(raw.sender)) {
      return null;
    }
    var entries = (Array.isArray(raw.entries) ? raw.entries : []).map(cleanEntry).filter(Boolean).slice(-MAX_ENTRIES);
    var ids = entries.map(function (e) { return e.id; });
    var queue = (Array.isArray(raw.queue) ? raw.queue : []).filter(function (q) {
      return q && typeof q.message === "string" && ids.indexOf(q.id) >= 0;
    }).map(function (q) { return { id: q.id, message: q.message }; });
    return { sender: raw.sender, entries: entries, queue: queue, open: raw.open === true };
  }

  function saveState() {
    if (!storage) return;
    var data = { v: 1, sender: state.sender, entries: state.entries, queue: state.queue, open: state.open };
    try {
      storage.setItem(KEY, JSON.stringify(data));
    } catch (e) {
      // Over the quota: keep the newer half of the transcript.
      try {
        data.entries = state.entries.slice(-Math.floor(MAX_ENTRIES / 2));
        storage.setItem(KEY, JSON.stringify(data));
      } catch (ignored) { /* nothing more to do: the page still works */ }
    }
  }

  var counter = 0;
  function nextId() {
    counter += 1;
    return Date.now().toString(36) + "-" + counter.toString(36) + "-" + Math.random().toString(36).slice(2, 7);
  }

  var stored = loadState();
  var state = stored || { sender: newSender(), entries: [], queue: [], open: OPEN_AT_FIRST_VISIT };

  // --- small DOM helpers (text only: never innerHTML) ---------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  var SVG_NS = "http://www.w3.org/2000/svg";
  function icon(paths) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "24");
    svg.setAttribute("height", "24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    paths.forEach(function (d) {
      var path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("d", d);
      svg.appendChild(path);
    });
    return svg;
  }

  function safeUrl(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      var url = new URL(value);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  // http(s) addresses stop at white space and at Chinese punctuation; other schemes stay text.
  var URL_RE = /https?:\/\/[^\s<>"'`，。；：、！？（）【】《》「」『』“”‘’]+/g;

  function appendRichText(parent, text) {
    var last = 0;
    var match;
    URL_RE.lastIndex = 0;
    while ((match = URL_RE.exec(text)) !== null) {
      var raw = match[0].replace(/[.,;:!?)\]}'"]+$/, "");
      var href = safeUrl(raw);
      if (!href) continue;
      if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      var link = el("a", "gw-link", raw);
      link.href = href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.appendChild(el("span", "gw-vh", "（在新窗口打开）"));
      parent.appendChild(link);
      last = match.index + raw.length;
      URL_RE.lastIndex = last;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  // --- the widget's DOM ---------------------------------------------------------------------

  var host = document.createElement("guide-widget");
  // The host page's CSS must not hide or re-anchor the widget (a transform would trap position:fixed).
  [["display", "block"], ["position", "static"], ["transform", "none"], ["filter", "none"],
   ["contain", "none"], ["visibility", "hidden"]].forEach(function (p) {
    host.style.setProperty(p[0], p[1], "important");
  });
  var shadow = host.attachShadow({ mode: "open" });

  var stylesheet = el("link");
  stylesheet.rel = "stylesheet";
  stylesheet.href = STYLESHEET;
  // Shown once styled; if the stylesheet cannot load, shown anyway: unstyled beats missing.
  function reveal() { host.style.setProperty("visibility", "visible", "important"); }
  stylesheet.addEventListener("load", reveal);
  stylesheet.addEventListener("error", reveal);
  shadow.appendChild(stylesheet);

  var root = el("div", "gw-root");
  root.lang = "zh-CN";
  root.dataset.state = "idle";
  shadow.appendChild(root);

  var launcher = el("button", "gw-launcher");
  launcher.type = "button";
  launcher.setAttribute("aria-haspopup", "dialog");
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "gw-panel");
  launcher.appendChild(icon(["M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"]));
  launcher.appendChild(el("span", "gw-launcher-text", "在线咨询"));
  root.appendChild(launcher);

  var panel = el("section", "gw-panel");
  panel.id = "gw-panel";
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-labelledby", "gw-title");
  root.appendChild(panel);

  var header = el("div", "gw-header");
  var title = el("h2", "gw-title", TITLE);
  title.id = "gw-title";
  var newButton = el("button", "gw-new", "新对话");
  newButton.type = "button";
  newButton.title = "清空记录，开始新的对话";
  var closeButton = el("button", "gw-close");
  closeButton.type = "button";
  closeButton.setAttribute("aria-label", "关闭对话窗口");
  closeButton.title = "关闭";
  closeButton.appendChild(icon(["M6 6l12 12M18 6L6 18"]));
  header.appendChild(title);
  header.appendChild(newButton);
  header.appendChild(closeButton);
  panel.appendChild(header);

  var banner = el("div", "gw-banner");
  banner.setAttribute("role", "status");
  banner.hidden = true;
  banner.appendChild(el("span", "gw-banner-text", "网络不稳定，正在重新连接…"));
  var retryButton = el("button", "gw-retry", "立即重试");
  retryButton.type = "button";
  banner.appendChild(retryButton);
  panel.appendChild(banner);

  var log = el("div", "gw-log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("aria-relevant", "additions");
  log.setAttribute("aria-label", "对话记录");
  log.tabIndex = 0;
  panel.appendChild(log);

  var typing = el("div", "gw-typing");
  typing.setAttribute("role", "status");
  typing.setAttribute("aria-label", "正在输入");
  typing.hidden = true;
  var dots = el("span", "gw-dots");
  dots.setAttribute("aria-hidden", "true");
  dots.appendChild(el("span"));
  dots.appendChild(el("span"));
  dots.appendChild(el("span"));
  typing.appendChild(dots);
  typing.appendChild(el("span", "gw-typing-text", "正在输入…"));
  panel.appendChild(typing);

  var form = el("form", "gw-form");
  form.noValidate = true;
  var label = el("label", "gw-label", "输入您的问题");
  label.htmlFor = "gw-input";
  var row = el("div", "gw-input-row");
  var input = el("textarea", "gw-input");
  input.id = "gw-input";
  input.rows = 1;
  input.maxLength = MAX_MESSAGE;
  input.setAttribute("enterkeyhint", "send");
  input.setAttribute("autocomplete", "off");
  input.placeholder = "例如：我身份证过期了怎么办";
  var sendButton = el("button", "gw-send", "发送");
  sendButton.type = "submit";
  row.appendChild(input);
  row.appendChild(sendButton);
  form.appendChild(label);
  form.appendChild(row);
  panel.appendChild(form);

  // --- rendering ------------------------------------------------------------------------------

  var nodes = {}; // entry id -> element in the log

  function statusText(status) {
    if (status === "queued") return "网络恢复后自动发送";
    if (status === "failed") return "未发送";
    return "";
  }

  /** A one-time notification as a card: the item, then each section; the materials as a checklist
   *  (what to bring, original or copy, how many, and whether it may come later or by promise). */
  function renderNotification(entry) {
    var bubble = el("div", "gw-bubble gw-notice-card");
    if (entry.title) bubble.appendChild(el("p", "gw-notice-title", "【" + entry.title + "】一次性告知"));
    entry.sections.forEach(function (section) {
      var part = el("section", "gw-section gw-section-" + section.key);
      part.appendChild(el("h3", "gw-section-heading", section.heading));
      var list = el("ul", section.materials.length ? "gw-checklist" : "gw-lines");
      if (section.materials.length) {
        section.materials.forEach(function (m) {
          var row = el("li", "gw-material");
          row.appendChild(el("span", "gw-check", "☐"));
          row.appendChild(el("span", "gw-material-name", m.name));
          var facts = [];
          if (m.form) facts.push(m.form);
          if (m.copies) facts.push(m.copies + "份");
          if (!m.required) facts.push("特定情形需要");
          if (facts.length) row.appendChild(el("span", "gw-material-form", facts.join(" · ")));
          if (m.deferrable) row.appendChild(el("span", "gw-flag gw-flag-later", "可容缺后补"));
          if (m.promise_ok) row.appendChild(el("span", "gw-flag gw-flag-promise", "可承诺代替"));
          if (m.note) row.appendChild(el("span", "gw-material-note", m.note));
          list.appendChild(row);
        });
      } else {
        section.lines.forEach(function (line) { list.appendChild(el("li", "gw-line", line)); });
      }
      part.appendChild(list);
      bubble.appendChild(part);
    });
    return bubble;
  }

  function renderEntry(entry) {
    var item = el("div", "gw-msg gw-msg-" + entry.role + (entry.tone ? " gw-tone-" + entry.tone : ""));
    item.dataset.id = entry.id;
    var who = entry.role === "user" ? "您：" : entry.role === "notice" ? "提示：" : "助手：";
    item.appendChild(el("span", "gw-vh", who));

    if (entry.card) {
      var card = el("div", "gw-card");
      card.appendChild(el("p", "gw-card-kind", KIND_LABELS[entry.card.kind] || "办事指南"));
      if (entry.card.title) card.appendChild(el("p", "gw-card-title", entry.card.title));
      card.appendChild(el("p", "gw-card-note", "材料、地点、时限、费用一页列全，可以打印带去，也可以转发给家人。"));
      var link = el("a", "gw-card-link", "一次性告知单：打印或分享");
      link.href = entry.card.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.appendChild(el("span", "gw-vh", "（在新窗口打开）"));
      card.appendChild(link);
      item.appendChild(card);
    } else if (entry.sections && entry.sections.length) {
      item.appendChild(renderNotification(entry));
    } else if (entry.text) {
      var bubble = el("div", "gw-bubble");
      if (entry.role === "user") bubble.textContent = entry.text;
      else appendRichText(bubble, entry.text);
      item.appendChild(bubble);
    }

    if (entry.buttons && entry.buttons.length) {
      var group = el("div", "gw-actions");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", "可选操作");
      entry.buttons.forEach(function (b) {
        var button = el("button", "gw-action", b.title);
        button.type = "button";
        button.disabled = !!entry.used;
        button.addEventListener("click", function () { choose(entry, b); });
        group.appendChild(button);
      });
      item.appendChild(group);
    }

    var status = statusText(entry.status);
    if (status) item.appendChild(el("p", "gw-status", status));
    return item;
  }

  function renderAll() {
    while (log.firstChild) log.removeChild(log.firstChild);
    nodes = {};
    state.entries.forEach(function (entry) {
      nodes[entry.id] = renderEntry(entry);
      log.appendChild(nodes[entry.id]);
    });
    scrollToEnd();
  }

  /** Bring an entry's element up to date in place (a replaced node would be announced again). */
  function refresh(entry) {
    var item = nodes[entry.id];
    if (!item) return;
    Array.prototype.forEach.call(item.querySelectorAll(".gw-action"), function (button) {
      button.disabled = !!entry.used;
    });
    var status = item.querySelector(".gw-status");
    var text = statusText(entry.status);
    if (!text && status) item.removeChild(status);
    if (text && !status) status = item.appendChild(el("p", "gw-status"));
    if (text) status.textContent = text;
  }

  function addEntry(entry) {
    entry.id = entry.id || nextId();
    state.entries.push(entry);
    nodes[entry.id] = renderEntry(entry);
    log.appendChild(nodes[entry.id]);
    while (state.entries.length > MAX_ENTRIES) {
      var gone = state.entries.shift();
      if (nodes[gone.id] && nodes[gone.id].parentNode === log) log.removeChild(nodes[gone.id]);
      delete nodes[gone.id];
    }
    return entry;
  }

  function findEntry(id) {
    for (var i = state.entries.length - 1; i >= 0; i -= 1) {
      if (state.entries[i].id === id) return state.entries[i];
    }
    return null;
  }

  function setStatus(id, status) {
    var entry = findEntry(id);
    if (!entry || entry.status === status) return;
    if (status) entry.status = status;
    else delete entry.status;
    refresh(entry);
  }

  var reducedMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)");

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  /** Show the start of a long answer rather than its end (the log is the offset parent). */
  function scrollToReply(first) {
    if (!first) return;
    var target = Math.min(log.scrollHeight - log.clientHeight, Math.max(0, first.offsetTop - 8));
    if (log.scrollTo) {
      log.scrollTo({ top: target, behavior: reducedMotion && reducedMotion.matches ? "auto" : "smooth" });
    } else {
      log.scrollTop = target;
    }
  }

  function greet() {
    if (state.entries.length) return;
    var greeting = { role: "bot", text: GREETING, local: true };
    var buttons = SUGGESTIONS.map(function (s) { return { title: s, payload: s }; });
    if (buttons.length) greeting.buttons = buttons;
    addEntry(greeting);
  }

  // --- sending, queueing and reconnecting ----------------------------------------------------

  var busy = false;
  var reconnecting = false;
  var attempt = 0;
  var retryTimer = null;
  var controller = null;
  var generation = 0;

  function updateIndicators() {
    typing.hidden = !(busy && !reconnecting);
    banner.hidden = !reconnecting;
    root.dataset.state = reconnecting ? "reconnecting" : busy || state.queue.length ? "sending" : "idle";
  }

  function post(message, id) {
    var ctrl = window.AbortController ? new AbortController() : null;
    controller = ctrl;
    var timer = ctrl ? setTimeout(function () { ctrl.abort(); }, TIMEOUT_MS) : null;
    var body = JSON.stringify({ sender: state.sender, message: message, metadata: { client: "guide-widget", message_id: id } });
    return fetch(WEBHOOK, {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      cache: "no-store",
      // text/plain keeps this a "simple" cross-origin request (no preflight); the server reads the
      // body as JSON either way and lets only the sites in ALLOWED_ORIGINS read the answer.
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      body: body,
      signal: ctrl ? ctrl.signal : undefined
    }).then(function (response) {
      if (response.status >= 500 || response.status === 408 || response.status === 429) {
        return { retry: true };
      }
      return response.json().then(function (data) { return data; }, function () { return undefined; })
        .then(function (data) {
          if (response.ok) {
            // A 200 that is not our JSON (a captive portal, a proxy's page) did not reach the assistant.
            return Array.isArray(data) ? { ok: true, messages: data } : { retry: true };
          }
          if (response.status === 400 && data && typeof data.error === "string" && data.error) {
            return { error: data.error };
          }
          return { error: "发送失败（错误代码 " + response.status + "）。请稍后再试，或到政务服务大厅咨询。" };
        });
    }, function () {
      return { retry: true };
    }).then(function (result) {
      if (timer) clearTimeout(timer);
      return result;
    });
  }

  function schedule() {
    clearTimeout(retryTimer);
    var delay = Math.min(30000, 1000 * Math.pow(2, Math.max(0, attempt - 1)));
    retryTimer = setTimeout(pump, delay + Math.floor(Math.random() * 400));
  }

  /** Send the first queued message; on success, the next. One request at a time, in order. */
  function pump() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (busy || !state.queue.length) {
      updateIndicators();
      return;
    }
    busy = true;
    var item = state.queue[0];
    var gen = generation;
    updateIndicators();
    post(item.message, item.id).then(function (result) {
      if (gen !== generation) return; // a new conversation started meanwhile
      busy = false;
      if (result.retry) {
        attempt += 1;
        reconnecting = true;
        state.queue.forEach(function (q) { setStatus(q.id, "queued"); });
        saveState();
        updateIndicators();
        schedule();
        return;
      }
      state.queue.shift();
      attempt = 0;
      reconnecting = false;
      if (result.ok) {
        setStatus(item.id, null);
        showReply(result.messages);
      } else {
        setStatus(item.id, "failed");
        addEntry({ role: "notice", tone: "error", text: result.error });
        scrollToEnd();
      }
      saveState();
      updateIndicators();
      pump();
    });
  }

  function showReply(messages) {
    var first = null;
    function add(entry) {
      var added = addEntry(entry);
      if (!first) first = nodes[added.id];
    }
    function answerIn(m) {
      var c = m && typeof m === "object" && m.custom && typeof m.custom === "object" ? m.custom : null;
      return c && c.answer && typeof c.answer === "object" ? c.answer : null;
    }
    messages.forEach(function (m, index) {
      if (!m || typeof m !== "object") return;
      var next = answerIn(messages[index + 1]);
      var custom = m.custom && typeof m.custom === "object" ? m.custom : null;
      var answer = custom && custom.answer && typeof custom.answer === "object" ? custom.answer : null;
      var text = typeof m.text === "string" ? m.text : "";
      var buttons = cleanButtons(m.buttons);
      if (answer && answer.kind === "unavailable") {
        add({ role: "bot", tone: "unavailable",
          text: text || "抱歉，系统暂时繁忙，没能回答您的问题。请稍后再试，或到政务服务大厅咨询。" });
        return;
      }
      if (text || buttons.length) {
        var entry = { role: "bot", text: text };
        if (buttons.length) entry.buttons = buttons;
        var sections = next ? cleanSections(next.sections) : [];
        if (sections.length) {  // the notification as a card, from the reply contract, not the text
          entry.sections = sections;
          var items = Array.isArray(next.items) ? next.items : [];
          entry.title = items.length && items[0] && typeof items[0].title === "string" ? items[0].title : "";
        }
        add(entry);
      }
      var image = safeUrl(m.image);
      if (image) add({ role: "bot", text: "图片：" + image });
      var sheet = answer ? safeUrl(answer.sheet_url) : null;
      if (sheet) {
        var about = Array.isArray(answer.items) ? answer.items : [];
        var title = about.length && about[0] && typeof about[0].title === "string" ? about[0].title : "";
        add({ role: "bot", card: { url: sheet, kind: typeof answer.kind === "string" ? answer.kind : "",
          title: title } });
      }
    });
    if (!first) {
      add({ role: "notice", text: "助手这次没有给出回答，请换个说法再问一次。" });
    }
    scrollToReply(first);
  }

  function send(text, shown) {
    var message = String(text === undefined || text === null ? "" : text).trim();
    if (!message) return false;
    var entry = { role: "user", text: String(shown || message) };
    if (reconnecting) entry.status = "queued";
    addEntry(entry);
    state.queue.push({ id: entry.id, message: message });
    saveState();
    scrollToEnd();
    pump();
    return true;
  }

  function choose(entry, button) {
    if (entry.used) return;
    entry.used = true;
    refresh(entry);
    saveState();
    send(button.payload, button.title);
    input.focus();
  }

  function retryNow() {
    if (!state.queue.length || busy) return;
    attempt = Math.max(0, attempt - 1);
    pump();
  }

  function newConversation() {
    generation += 1;
    if (controller) controller.abort();
    clearTimeout(retryTimer);
    busy = false;
    reconnecting = false;
    attempt = 0;
    state.sender = newSender();
    state.entries = [];
    state.queue = [];
    renderAll();
    greet();
    saveState();
    updateIndicators();
    input.value = "";
    resizeInput();
    input.focus();
  }

  // --- opening, closing, keyboard ------------------------------------------------------------

  function open(focus) {
    panel.hidden = false;
    launcher.hidden = true;
    launcher.setAttribute("aria-expanded", "true");
    if (!state.open) {
      state.open = true;
      saveState();
    }
    scrollToEnd();
    if (focus !== false) input.focus();
  }

  function close(returnFocus) {
    panel.hidden = true;
    launcher.hidden = false;
    launcher.setAttribute("aria-expanded", "false");
    if (state.open) {
      state.open = false;
      saveState();
    }
    if (returnFocus !== false) launcher.focus();
  }

  function resizeInput() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 4, 160) + "px";
  }

  launcher.addEventListener("click", function () { open(true); });
  closeButton.addEventListener("click", function () { close(true); });
  newButton.addEventListener("click", newConversation);
  retryButton.addEventListener("click", retryNow);

  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !event.isComposing) {
      event.preventDefault();
      close(true);
    }
  });

  input.addEventListener("keydown", function (event) {
    // Enter sends; Shift+Enter is a new line; Enter that confirms a Chinese IME candidate does neither.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", resizeInput);

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit();
  });

  function submit() {
    if (send(input.value)) {
      input.value = "";
      resizeInput();
    }
    input.focus();
  }

  window.addEventListener("online", function () {
    if (state.queue.length && !busy) {
      attempt = 0;
      pump();
    }
  });

  // Another tab of the same site went on with the conversation: follow it when idle here.
  window.addEventListener("storage", function (event) {
    if (event.key !== KEY || busy || state.queue.length) return;
    var other = loadState();
    if (!other) return;
    state.sender = other.sender;
    state.entries = other.entries;
    renderAll();
    if (!state.entries.length) greet();
  });

  // --- start ----------------------------------------------------------------------------------

  function start() {
    (document.body || document.documentElement).appendChild(host);
    renderAll();
    greet();
    if (state.open) open(false); // restored: open, but do not take the focus from the page
    saveState();
    updateIndicators();
    pump(); // a message queued before a reload goes out now
  }

  window.GuideWidget = {
    version: "1.0",
    open: function () { open(true); },
    close: function () { close(true); },
    send: function (text) {
      if (panel.hidden) open(false);
      return send(text);
    }
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
