/* 办不成事反映窗口 · 工单台账 — the window staff's page.
 *
 * Plain ES2020, no libraries, no requests to anything but this server's /api.
 * Ticket fields are what citizens typed: every value reaches the page through
 * textContent / createTextNode / setAttribute on fixed attribute names, never as markup.
 */
"use strict";

(() => {
  const TOKEN_KEY = "guide-staff-token";
  const REFRESH_MS = 60 * 1000;
  const SOON_MS = 2 * 60 * 60 * 1000; // "即将到期" within two hours

  const ACTIONS = {
    created: "登记",
    assigned: "指派",
    triaged: "分级",
    note: "备注",
    resolved: "办结",
    viewed_phone: "查看电话",
  };
  const ACTORS = { citizen: "反映人（自助登记）" };

  const state = {
    token: null,
    meta: null,
    tickets: [],
    now: null,
    selected: null, // number of the ticket in the detail panel
    detail: null, // that ticket's JSON
    detailSeq: 0,
    listSeq: 0,
    timer: null,
    reportLoaded: false,
  };

  const $ = (id) => document.getElementById(id);

  // --- DOM helpers (text only) -----------------------------------------------------

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) {
      child.forEach((c) => append(node, c));
    } else if (child instanceof Node) {
      node.appendChild(child);
    } else {
      node.appendChild(document.createTextNode(String(child)));
    }
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.setAttribute("class", value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  const SVG_NS = (() => {
    const template = $("svg-namespace");
    const svg = template && template.content.firstElementChild;
    return svg ? svg.namespaceURI : null;
  })();

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function say(id, text) {
    const node = $(id);
    node.textContent = text || "";
  }

  const dash = (value) => (value === null || value === undefined || value === "" ? "—" : String(value));
  const when = (iso) => (iso ? String(iso).replace("T", " ") : "—");

  /** Minutes-precision hall times ("2026-11-26T09:30") as comparable milliseconds. */
  function ms(iso) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(iso || "");
    return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) : NaN;
  }

  function clock() {
    const d = new Date();
    const two = (n) => String(n).padStart(2, "0");
    return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  }

  // --- the API ---------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function explain(status, data) {
    const detail = data && typeof data.error === "string" ? data.error : "";
    switch (status) {
      case 400: return `输入有误：${detail || "请检查填写的内容"}`;
      case 404: return `未找到：${detail || "没有这个工单"}`;
      case 413: return "提交的内容太长，请精简后再试。";
      case 503: return `工单数据库暂时无法连接，请稍后再试。${detail ? `（${detail}）` : ""}`;
      default: return `服务器出错（HTTP ${status}）${detail ? `：${detail}` : ""}，请稍后再试。`;
    }
  }

  async function api(path, body) {
    const headers = { Authorization: `Bearer ${state.token}`, Accept: "application/json" };
    const init = { method: "GET", headers, cache: "no-store", credentials: "same-origin" };
    if (body !== undefined) {
      init.method = "POST";
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      throw new ApiError(0, "无法连接服务器，请检查网络后重试。");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (response.status === 401) {
      signOut("令牌不正确或已失效（服务器拒绝了访问），请重新输入令牌登录。");
      throw new ApiError(401, "需要重新登录。");
    }
    if (!response.ok) throw new ApiError(response.status, explain(response.status, data));
    if (data === null) throw new ApiError(response.status, "服务器返回的内容无法识别。");
    return data;
  }

  function query(params) {
    const parts = [];
    for (const [key, value] of Object.entries(params)) {
      if (value !== "" && value !== null && value !== undefined) {
        parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
      }
    }
    return parts.length ? `?${parts.join("&")}` : "";
  }

  const ticketPath = (number) => `/api/tickets/${encodeURIComponent(number)}`;

  // --- sign-in ---------------------------------------------------------------------

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (_) {
      return null;
    }
  }

  function storeToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      /* storage disabled: the token lives in memory for this page only */
    }
  }

  function showSignIn(message) {
    $("app").hidden = true;
    $("who").hidden = true;
    $("signin").hidden = false;
    say("signin-message", message);
    $("signin-button").disabled = false;
    const field = $("token");
    field.value = "";
    field.focus();
  }

  function forgetData() {
    stopTimer();
    state.meta = null;
    state.tickets = [];
    state.selected = null;
    state.detail = null;
    state.detailSeq += 1;
    state.listSeq += 1;
    state.reportLoaded = false;
    clear($("ticket-rows"));
    clear($("detail-fields"));
    clear($("history-rows"));
    say("detail-phone", "");
    $("detail").hidden = true;
    clear($("report-body"));
    ["list-status", "list-error", "detail-status", "detail-error", "report-status", "report-error"].forEach((id) =>
      say(id, ""));
    ["assignee", "note-text", "resolution-text", "report-from", "report-to"].forEach((id) => {
      $(id).value = "";
    });
  }

  function signOut(message) {
    state.token = null;
    storeToken(null);
    forgetData();
    showSignIn(message);
  }

  async function start(token) {
    state.token = token;
    $("signin-button").disabled = true;
    say("signin-message", "");
    let meta;
    try {
      meta = await api("/api/meta");
    } catch (error) {
      if (error.status !== 401) {
        // Keep the token: the server may just be unreachable for a moment.
        $("signin-button").disabled = false;
        say("signin-message", `登录失败：${error.message}`);
      }
      return;
    }
    storeToken(token);
    state.meta = meta;
    fillSelects(meta);
    $("staff-name").textContent = meta.staff;
    $("signin").hidden = true;
    $("who").hidden = false;
    $("app").hidden = false;
    $("main").focus();
    selectTab("tickets", false); // loads the list
    startTimer();
  }

  function fillSelects(meta) {
    const fill = (id, options, first) => {
      const select = $(id);
      clear(select);
      if (first !== null) select.appendChild(el("option", { value: "" }, first));
      for (const [code, label] of Object.entries(options)) select.appendChild(el("option", { value: code }, label));
    };
    fill("filter-status", meta.statuses, "全部");
    fill("filter-category", meta.categories, "全部");
    fill("filter-triage", meta.triage, "全部");
    fill("triage-select", meta.triage, null);
  }

  // --- tabs ------------------------------------------------------------------------

  const TABS = ["tickets", "reports"];

  function selectTab(name, focus) {
    for (const tab of TABS) {
      const button = $(`tab-${tab}`);
      const active = tab === name;
      button.setAttribute("aria-selected", active ? "true" : "false");
      button.tabIndex = active ? 0 : -1;
      $(`panel-${tab}`).hidden = !active;
      if (active && focus) button.focus();
    }
    if (name === "reports" && !state.reportLoaded) loadReport(false);
    if (name === "tickets") loadList();
  }

  function tabKeys(event) {
    const current = TABS.findIndex((t) => $(`tab-${t}`) === event.target);
    if (current < 0) return;
    let next = null;
    if (event.key === "ArrowRight") next = (current + 1) % TABS.length;
    else if (event.key === "ArrowLeft") next = (current - 1 + TABS.length) % TABS.length;
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = TABS.length - 1;
    if (next === null) return;
    event.preventDefault();
    selectTab(TABS[next], true);
  }

  // --- the list --------------------------------------------------------------------

  function filters() {
    return {
      status: $("filter-status").value,
      category: $("filter-category").value,
      triage: $("filter-triage").value,
      overdue: $("filter-overdue").checked ? "true" : "",
    };
  }

  async function loadList() {
    if (!state.token) return;
    const seq = ++state.listSeq;
    say("list-status", "正在刷新…");
    let data;
    try {
      data = await api(`/api/tickets${query(filters())}`);
    } catch (error) {
      if (seq !== state.listSeq || error.status === 401) return;
      say("list-status", "");
      say("list-error", `工单列表加载失败：${error.message}`);
      return;
    }
    if (seq !== state.listSeq) return; // a newer refresh is on its way
    say("list-error", "");
    state.tickets = Array.isArray(data.tickets) ? data.tickets : [];
    state.now = data.now;
    renderList();
    const late = state.tickets.filter((t) => t.overdue && t.status !== "resolved").length;
    const more = state.tickets.length >= 200 ? "（最多显示 200 件，请用筛选缩小范围）" : "";
    say("list-status", `共 ${state.tickets.length} 件，其中已超时未办结 ${late} 件${more}。更新于 ${clock()}。`);
  }

  function dueBadges(t, now) {
    if (t.status === "resolved") {
      return t.overdue ? el("span", { class: "badge late-done" }, "超时办结") : null;
    }
    if (t.overdue) return el("span", { class: "badge late" }, "已超时");
    const left = ms(t.due_at) - ms(now);
    if (left >= 0 && left <= SOON_MS) return el("span", { class: "badge soon" }, "即将到期");
    return null;
  }

  function statusBadge(t) {
    return el("span", { class: `badge status-${t.status}` }, t.status_label);
  }

  function renderList() {
    const body = $("ticket-rows");
    const focused = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest("#ticket-rows tr")
      : null;
    const refocus = focused ? focused.getAttribute("data-number") : null;
    clear(body);
    if (!state.tickets.length) {
      body.appendChild(el("tr", null, el("td", { colspan: "10", class: "empty" }, "没有符合条件的工单。")));
      return;
    }
    for (const t of state.tickets) {
      const late = t.overdue && t.status !== "resolved";
      const classes = ["ticket"];
      if (late) classes.push("overdue");
      if (t.status === "resolved") classes.push("resolved");
      if (t.number === state.selected) classes.push("selected");
      const open = el("button", { type: "button", class: "link", "aria-describedby": "ticket-caption" }, t.number);
      if (t.number === state.selected) open.setAttribute("aria-current", "true");
      const row = el("tr", { class: classes.join(" "), "data-number": t.number },
        el("th", { scope: "row" }, open),
        el("td", null, t.category_label),
        el("td", null, dash(t.item)),
        el("td", null, dash(t.name)),
        el("td", { class: "phone" }, t.phone ? t.phone : "未留"),
        el("td", null, t.triage_label),
        el("td", null, statusBadge(t)),
        el("td", null, dash(t.assignee)),
        el("td", { class: "time" }, when(t.created_at)),
        el("td", { class: "time" }, el("span", null, when(t.due_at)), " ", dueBadges(t, state.now)),
      );
      body.appendChild(row);
    }
    if (refocus) {
      const again = body.querySelector(`tr[data-number="${CSS.escape(refocus)}"] button`);
      if (again) again.focus();
    }
  }

  function startTimer() {
    stopTimer();
    if (!$("auto-refresh").checked) return;
    state.timer = setInterval(() => {
      if (!document.hidden && !$("panel-tickets").hidden) loadList();
    }, REFRESH_MS);
  }

  function stopTimer() {
    if (state.timer !== null) clearInterval(state.timer);
    state.timer = null;
  }

  // --- one ticket ------------------------------------------------------------------

  async function openTicket(number, focusPanel) {
    const seq = ++state.detailSeq;
    if (number !== state.selected) {
      // Another ticket: nothing typed for the previous one may be sent to this one.
      ["form-assign", "form-note", "form-resolve"].forEach((id) => $(id).reset());
    }
    state.selected = number;
    state.detail = null;
    $("detail").hidden = false;
    say("detail-title", `工单 ${number}`);
    say("detail-status", "正在加载…");
    say("detail-error", "");
    markSelected();
    if (focusPanel) $("detail-title").focus();
    let ticket;
    try {
      ticket = await api(ticketPath(number));
    } catch (error) {
      if (seq !== state.detailSeq || error.status === 401) return;
      say("detail-status", "");
      say("detail-error", error.message);
      clear($("detail-fields"));
      clear($("history-rows"));
      return;
    }
    if (seq !== state.detailSeq) return;
    say("detail-status", "");
    renderDetail(ticket, false);
  }

  function markSelected() {
    for (const row of $("ticket-rows").querySelectorAll("tr[data-number]")) {
      const on = row.getAttribute("data-number") === state.selected;
      row.classList.toggle("selected", on);
      const button = row.querySelector("button");
      if (on) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  function closeDetail() {
    const number = state.selected;
    state.selected = null;
    state.detail = null;
    state.detailSeq += 1;
    $("detail").hidden = true;
    clear($("detail-fields"));
    clear($("history-rows"));
    say("detail-phone", "");
    markSelected();
    const row = number && $("ticket-rows").querySelector(`tr[data-number="${CSS.escape(number)}"] button`);
    if (row) row.focus();
    else $("ticket-table").closest(".table-wrap").focus();
  }

  function field(list, label, value) {
    list.appendChild(el("div", { class: "pair" }, el("dt", null, label), el("dd", null, value)));
  }

  function renderDetail(t, revealed) {
    state.detail = t;
    say("detail-title", `工单 ${t.number}`);
    const list = $("detail-fields");
    clear(list);
    const late = t.overdue && t.status !== "resolved";
    field(list, "编号", t.number);
    field(list, "状态", [statusBadge(t), " ", dueBadges(t, state.now)]);
    field(list, "类别", t.category_label);
    field(list, "分级", t.triage_label);
    field(list, "来源", t.source_label);
    field(list, "事项", dash(t.item));
    field(list, "反映人", dash(t.name));
    if (t.rating !== null && t.rating !== undefined) field(list, "评价", `${t.rating} 星`);
    field(list, "反映内容", el("span", { class: "prose" }, dash(t.description)));
    field(list, "承办人", dash(t.assignee));
    field(list, "受理时间", when(t.created_at));
    field(list, "应答复时间", [when(t.due_at), late ? " " : "", late ? el("span", { class: "badge late" }, "已超时") : null]);
    field(list, "办结时间", when(t.resolved_at));
    field(list, "办结说明", el("span", { class: "prose" }, dash(t.resolution)));
    $("detail").classList.toggle("overdue", late);

    // Phone: masked unless this render comes from ?reveal=phone.
    const phone = $("detail-phone");
    clear(phone);
    const reveal = $("reveal-phone");
    if (!t.phone) {
      append(phone, "反映人未留电话。");
      reveal.hidden = true;
    } else if (revealed) {
      append(phone, [el("strong", { class: "phone-full" }, t.phone), "（完整号码，本次查看已记入台账）"]);
      reveal.hidden = true;
    } else {
      append(phone, [t.phone, "（已隐去中间四位）"]);
      reveal.hidden = false;
    }

    // Forms: assign and resolve only while the ticket is open.
    const done = t.status === "resolved";
    $("resolved-note").hidden = !done;
    $("form-assign").hidden = done;
    $("form-resolve").hidden = done;
    if (document.activeElement !== $("triage-select")) $("triage-select").value = t.triage;

    const rows = $("history-rows");
    clear(rows);
    const history = Array.isArray(t.history) ? t.history : [];
    if (!history.length) rows.appendChild(el("tr", null, el("td", { colspan: "4", class: "empty" }, "暂无记录。")));
    for (const h of history) {
      rows.appendChild(el("tr", { class: `action-${h.action === "viewed_phone" ? "phone" : "other"}` },
        el("th", { scope: "row", class: "time" }, when(h.at)),
        el("td", null, ACTORS[h.actor] || h.actor),
        el("td", null, ACTIONS[h.action] || h.action),
        el("td", { class: "prose" }, h.detail),
      ));
    }
  }

  /** Put a changed ticket back into the list without waiting for the next refresh. */
  function updateListRow(t) {
    const index = state.tickets.findIndex((x) => x.number === t.number);
    if (index >= 0) {
      state.tickets[index] = t;
      renderList();
    }
  }

  async function revealPhone() {
    const number = state.selected;
    if (!number) return;
    const button = $("reveal-phone");
    button.disabled = true;
    say("detail-error", "");
    const seq = ++state.detailSeq;
    try {
      const ticket = await api(`${ticketPath(number)}?reveal=phone`);
      if (seq !== state.detailSeq) return;
      renderDetail(ticket, true);
      say("detail-status", "已显示完整电话号码；此次查看已记入台账。");
      $("detail-phone").setAttribute("tabindex", "-1");
      $("detail-phone").focus();
    } catch (error) {
      if (error.status !== 401 && seq === state.detailSeq) say("detail-error", error.message);
    } finally {
      button.disabled = false;
    }
  }

  /** One POST form: check it is filled in, send it, re-render from the ticket returned. */
  function actionForm(formId, verb, key, read, done) {
    const form = $(formId);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const number = state.selected;
      if (!number) return;
      const value = read();
      say("detail-status", "");
      say("detail-error", "");
      if (!value.trim()) {
        say("detail-error", `请先填写“${form.querySelector("label").textContent}”。`);
        form.querySelector("input, textarea, select").focus();
        return;
      }
      if (verb === "resolve" && !window.confirm(`确认办结工单 ${number}？办结后不能撤回。`)) return;
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      form.setAttribute("aria-busy", "true");
      try {
        const ticket = await api(`${ticketPath(number)}/${verb}`, { [key]: value });
        updateListRow(ticket);
        if (number !== state.selected) return;
        state.detailSeq += 1; // a detail load still on its way is older than this answer
        renderDetail(ticket, false);
        say("detail-status", done(ticket));
        form.reset();
        if (verb === "triage") $("triage-select").value = ticket.triage;
        if (verb === "resolve") $("detail-title").focus();
      } catch (error) {
        if (error.status !== 401) say("detail-error", `操作未完成。${error.message}`);
      } finally {
        button.disabled = false;
        form.removeAttribute("aria-busy");
      }
    });
  }

  // --- reports ---------------------------------------------------------------------

  async function loadReport(useForm) {
    if (!state.token) return;
    say("report-error", "");
    const params = {};
    if (useForm) {
      const from = $("report-from").value;
      const to = $("report-to").value;
      if (from && to && from > to) {
        say("report-error", "开始日期不能晚于结束日期。");
        $("report-from").focus();
        return;
      }
      params.from = from;
      params.to = to; // either left empty: the server's default (the last 30 days, ending today)
    }
    say("report-status", "正在生成报表…");
    let data;
    try {
      data = await api(`/api/reports${query(params)}`);
    } catch (error) {
      if (error.status === 401) return;
      say("report-status", "");
      say("report-error", `报表生成失败：${error.message}`);
      return;
    }
    state.reportLoaded = true;
    $("report-from").value = data.from;
    $("report-to").value = data.to;
    renderReport(data);
    say("report-status", `报告期间 ${data.from} 至 ${data.to}，生成于 ${clock()}。`);
  }

  function percent(part, whole) {
    return whole ? `${Math.round((part / whole) * 1000) / 10}%` : "—";
  }

  function stat(label, value, note) {
    return el("div", { class: "stat" },
      el("dt", null, label),
      el("dd", null, el("span", { class: "value" }, value), note ? el("span", { class: "note" }, note) : null));
  }

  function section(title, ...children) {
    return el("section", { class: "report-section" }, el("h3", null, title), children);
  }

  function renderReport(data) {
    const body = $("report-body");
    clear(body);
    const r = data.ratings || {};
    const t = data.tickets || {};
    const sla = t.sla_compliance === null || t.sla_compliance === undefined
      ? "—"
      : `${Math.round(t.sla_compliance * 1000) / 10}%`;

    body.appendChild(section("总体情况",
      el("dl", { class: "stats" },
        stat("咨询总数", String(data.questions)),
        stat("解答", String(data.answered), `占 ${percent(data.answered, data.questions)}`),
        stat("未解决", String(data.unresolved), `占 ${percent(data.unresolved, data.questions)}`),
        stat("评价数 / 平均分", `${r.count || 0} / ${r.average === null || r.average === undefined ? "—" : r.average}`,
          r.count ? "满分 5 分" : "暂无评价"),
        stat("工单数", String(t.count || 0), `未办结 ${t.open || 0}`),
        stat("按时办结率", sla, t.sla_due ? `按时 ${t.sla_met} / 应办结 ${t.sla_due}` : "暂无到期工单"),
      )));

    body.appendChild(section("每日咨询（解答与未解决）", dayChart(data.per_day || {}), dayTable(data.per_day || {})));

    const categories = (state.meta && state.meta.categories) || {};
    const byCategory = Object.entries(t.by_category || {}).map(([code, n]) => ({ label: categories[code] || code, value: n }));
    body.appendChild(section("工单按类别", barChart("工单按类别", byCategory, "件")));

    const levels = r.by_level || {};
    const byLevel = ["5", "4", "3", "2", "1"].map((level) => ({ label: `${level} 星`, value: levels[level] || 0 }));
    body.appendChild(section("评价分布（按星级）", barChart("评价分布", byLevel, "条")));

    const top = Array.isArray(data.top_unresolved) ? data.top_unresolved : [];
    body.appendChild(section("未解决的问题（前 10）", top.length
      ? table("未解决的问题", ["序号", "问题", "次数"],
        top.map((row, i) => [String(i + 1), row.question, String(row.count)]), [false, true, false])
      : el("p", { class: "empty" }, "报告期内没有未解决的问题。")));

    const items = Array.isArray(r.by_item) ? r.by_item : [];
    body.appendChild(section("各事项评价", items.length
      ? table("各事项评价", ["事项", "评价数", "平均分"],
        items.map((row) => [dash(row.title), String(row.count), String(row.average)]), [true, false, false])
      : el("p", { class: "empty" }, "报告期内没有评价。")));
  }

  /** A table of text cells; rowHeaders[i] makes column i the row header. */
  function table(caption, heads, rows, rowHeaders) {
    return el("div", { class: "table-wrap", role: "region", "aria-label": caption, tabindex: "0" },
      el("table", { class: "report-table" },
        el("caption", { class: "visually-hidden" }, caption),
        el("thead", null, el("tr", null, heads.map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", null, rows.map((cells) => el("tr", null, cells.map((c, i) =>
          rowHeaders[i] ? el("th", { scope: "row" }, c) : el("td", { class: i > 0 ? "num" : null }, c)))))));
  }

  function dayTable(perDay) {
    const days = Object.keys(perDay).sort();
    return el("details", { class: "data-table" },
      el("summary", null, "查看每日数据表"),
      table("每日咨询数据", ["日期", "解答", "未解决", "合计"], days.map((d) => {
        const a = perDay[d].answered || 0;
        const u = perDay[d].unresolved || 0;
        return [d, String(a), String(u), String(a + u)];
      }), [true, false, false, false]));
  }

  /** A round upper bound for an axis: 1, 2, 5 times a power of ten. */
  function niceMax(value) {
    if (value <= 5) return Math.max(1, Math.ceil(value));
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 5, 10]) {
      if (step * power >= value) return step * power;
    }
    return value;
  }

  let chartCount = 0;

  function dayChart(perDay) {
    const days = Object.keys(perDay).sort();
    const id = `chart-${++chartCount}`;
    const totals = days.map((d) => (perDay[d].answered || 0) + (perDay[d].unresolved || 0));
    const top = niceMax(Math.max(0, ...totals));
    const sumA = days.reduce((s, d) => s + (perDay[d].answered || 0), 0);
    const sumU = days.reduce((s, d) => s + (perDay[d].unresolved || 0), 0);
    const busiest = totals.length ? days[totals.indexOf(Math.max(...totals))] : null;

    const left = 44;
    const right = 12;
    const topPad = 40;
    const bottom = 36;
    const width = Math.max(640, left + right + days.length * 18);
    const height = 300;
    const plotW = width - left - right;
    const plotH = height - topPad - bottom;
    const step = days.length ? plotW / days.length : plotW;
    const barW = Math.max(2, Math.min(28, step * 0.7));
    const y = (v) => topPad + plotH - (v / top) * plotH;

    const root = svg("svg", {
      class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-labelledby": `${id}-title ${id}-desc`, preserveAspectRatio: "xMinYMin meet",
    });
    root.appendChild(svg("title", { id: `${id}-title` }, "每日咨询：解答与未解决（堆叠柱状图）"));
    root.appendChild(svg("desc", { id: `${id}-desc` },
      `共 ${days.length} 天，解答合计 ${sumA} 次，未解决合计 ${sumU} 次` +
      (busiest && Math.max(...totals) > 0 ? `；最多的一天是 ${busiest}，共 ${Math.max(...totals)} 次。` : "。") +
      "逐日数字见下方数据表。"));

    // Unresolved bars are hatched as well as coloured, so the two series differ without colour.
    const hatch = `${id}-hatch`;
    root.appendChild(svg("defs", null,
      svg("pattern", { id: hatch, width: "6", height: "6", patternUnits: "userSpaceOnUse",
        patternTransform: "rotate(45)" },
      svg("rect", { width: "6", height: "6", class: "bar-unresolved" }),
      svg("line", { x1: "0", y1: "0", x2: "0", y2: "6", class: "hatch-line" }))));

    // Legend.
    root.appendChild(svg("g", { class: "legend", "aria-hidden": "true" },
      svg("rect", { x: String(left), y: "10", width: "16", height: "16", class: "bar-answered" }),
      svg("text", { x: String(left + 22), y: "23" }, "解答"),
      svg("rect", { x: String(left + 80), y: "10", width: "16", height: "16", fill: `url(#${hatch})`,
        class: "hatched" }),
      svg("text", { x: String(left + 102), y: "23" }, "未解决")));

    // Axis and grid.
    const axis = svg("g", { class: "axis", "aria-hidden": "true" });
    const ticks = top <= 5 ? Array.from({ length: top + 1 }, (_, i) => i) : [0, top / 4, top / 2, (3 * top) / 4, top];
    for (const v of ticks) {
      if (!Number.isInteger(v)) continue;
      axis.appendChild(svg("line", { x1: String(left), x2: String(width - right), y1: String(y(v)), y2: String(y(v)),
        class: v === 0 ? "baseline" : "grid" }));
      axis.appendChild(svg("text", { x: String(left - 6), y: String(y(v) + 4), "text-anchor": "end" }, String(v)));
    }
    const every = Math.max(1, Math.ceil(days.length / 12));
    days.forEach((d, i) => {
      if (i % every !== 0) return;
      axis.appendChild(svg("text", { x: String(left + step * i + step / 2), y: String(height - bottom + 18),
        "text-anchor": "middle" }, d.slice(5)));
    });
    root.appendChild(axis);

    const bars = svg("g", { class: "bars" });
    days.forEach((d, i) => {
      const a = perDay[d].answered || 0;
      const u = perDay[d].unresolved || 0;
      const x = left + step * i + (step - barW) / 2;
      const g = svg("g", null, svg("title", null, `${d}：解答 ${a}，未解决 ${u}`));
      if (a > 0) {
        g.appendChild(svg("rect", { x: String(x), y: String(y(a)), width: String(barW), height: String(y(0) - y(a)),
          class: "bar-answered" }));
      }
      if (u > 0) {
        g.appendChild(svg("rect", { x: String(x), y: String(y(a + u)), width: String(barW),
          height: String(y(a) - y(a + u)), fill: `url(#${hatch})`, class: "hatched" }));
      }
      bars.appendChild(g);
    });
    root.appendChild(bars);
    return el("div", { class: "chart-wrap" }, root);
  }

  /** Horizontal bars with their labels and numbers written out. */
  function barChart(title, rows, unit) {
    const id = `chart-${++chartCount}`;
    const textWidth = (s) => Array.from(s).reduce((w, ch) => w + (ch.charCodeAt(0) > 255 ? 15 : 8.5), 0);
    const labelW = Math.min(320, Math.max(60, ...rows.map((r) => textWidth(r.label))) + 12);
    const rowH = 32;
    const width = 720;
    const valueW = 70;
    const height = rows.length * rowH + 8;
    const plotW = width - labelW - valueW;
    const top = Math.max(1, ...rows.map((r) => r.value));
    const total = rows.reduce((s, r) => s + r.value, 0);

    const root = svg("svg", {
      class: "chart hbar", viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-labelledby": `${id}-title ${id}-desc`, preserveAspectRatio: "xMinYMin meet",
    });
    root.appendChild(svg("title", { id: `${id}-title` }, `${title}（条形图）`));
    root.appendChild(svg("desc", { id: `${id}-desc` },
      `合计 ${total} ${unit}。` + rows.map((r) => `${r.label}：${r.value} ${unit}`).join("；") + "。"));
    rows.forEach((r, i) => {
      const yTop = 4 + i * rowH;
      const w = r.value > 0 ? Math.max(2, (r.value / top) * plotW) : 0;
      root.appendChild(svg("g", { "aria-hidden": "true" },
        svg("text", { x: String(labelW - 10), y: String(yTop + 20), "text-anchor": "end", class: "label" }, r.label),
        svg("rect", { x: String(labelW), y: String(yTop + 4), width: String(w), height: String(rowH - 10),
          class: "bar-count" }),
        svg("text", { x: String(labelW + w + 8), y: String(yTop + 20), class: "value" }, `${r.value} ${unit}`)));
    });
    return el("div", { class: "chart-wrap" }, root);
  }

  // --- wiring ----------------------------------------------------------------------

  function wire() {
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (!token) {
        say("signin-message", "请输入工作人员令牌。");
        $("token").focus();
        return;
      }
      if (!/^[\x21-\x7e]+$/.test(token)) {
        say("signin-message", "令牌只包含英文字母、数字和符号，请检查是否输入了中文或空格。");
        $("token").focus();
        return;
      }
      start(token);
    });
    $("sign-out").addEventListener("click", () => signOut("已退出登录。"));

    for (const tab of TABS) {
      $(`tab-${tab}`).addEventListener("click", () => selectTab(tab, true));
      $(`tab-${tab}`).addEventListener("keydown", tabKeys);
    }

    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      loadList();
    });
    for (const id of ["filter-status", "filter-category", "filter-triage", "filter-overdue"]) {
      $(id).addEventListener("change", () => loadList());
    }
    $("auto-refresh").addEventListener("change", startTimer);
    $("print-list").addEventListener("click", () => window.print());
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && state.token && $("auto-refresh").checked && !$("panel-tickets").hidden) loadList();
    });

    // A click anywhere on a row opens it; the number is a real button for the keyboard.
    $("ticket-rows").addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-number]");
      if (!row) return;
      const fromButton = Boolean(event.target.closest("button"));
      openTicket(row.getAttribute("data-number"), fromButton);
    });

    $("detail-close").addEventListener("click", closeDetail);
    $("detail").addEventListener("keydown", (event) => {
      if (event.key === "Escape") closeDetail();
    });
    $("reveal-phone").addEventListener("click", revealPhone);

    actionForm("form-assign", "assign", "assignee", () => $("assignee").value,
      (t) => `已指派给 ${t.assignee}。`);
    actionForm("form-triage", "triage", "triage", () => $("triage-select").value,
      (t) => `分级已改为“${t.triage_label}”。`);
    actionForm("form-note", "notes", "note", () => $("note-text").value, () => "备注已记入台账。");
    actionForm("form-resolve", "resolve", "resolution", () => $("resolution-text").value,
      () => "工单已办结。");

    $("report-form").addEventListener("submit", (event) => {
      event.preventDefault();
      loadReport(true);
    });
    $("report-last30").addEventListener("click", () => {
      $("report-from").value = "";
      $("report-to").value = "";
      loadReport(false);
    });
  }

  wire();
  const saved = storedToken();
  if (saved) start(saved);
  else showSignIn("");
})();
