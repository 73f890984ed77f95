// 对话页：显示助手的文字、按钮（点按即发送）和一次性告知单卡片。
const app = getApp();

const WELCOME = "您好！我是政务服务导办助手。请告诉我您要办什么事，我会一次性告诉您需要的材料、地点、时限和费用。";
const EXAMPLES = ["身份证过期了怎么办", "生了孩子要办哪些手续", "开个小卖部要办什么证"];

let seq = 0;

Page({
  data: {
    items: [],
    input: "",
    loading: false,
    scrollTo: "",
  },

  onLoad() {
    this.add({
      role: "bot",
      kind: "text",
      text: WELCOME,
      buttons: EXAMPLES.map((q) => ({ title: q, payload: q })),
      links: [],
    });
  },

  add(item) {
    seq += 1;
    item.id = "m" + seq;
    this.setData({ items: this.data.items.concat([item]), scrollTo: item.id });
  },

  onInput(e) {
    this.setData({ input: e.detail.value });
  },

  onSend() {
    const text = this.data.input.trim();
    if (!text || this.data.loading) return undefined;
    this.setData({ input: "" });
    return this.send(text, text);
  },

  // 按钮：页面上显示按钮文字，发给助手的是按钮的 payload。
  onButton(e) {
    if (this.data.loading) return undefined;
    const { title, payload } = e.currentTarget.dataset;
    return this.send(payload, title);
  },

  async send(message, shown) {
    this.add({ role: "user", kind: "text", text: shown, buttons: [], links: [] });
    this.setData({ loading: true, scrollTo: "loading" });
    try {
      const messages = await app.ask(message);
      messages.forEach((m) => this.show(m));
    } catch (err) {
      this.add({ role: "bot", kind: "error", text: err.message, buttons: [], links: [] });
    } finally {
      this.setData({ loading: false });
    }
  },

  // 服务器已按页面需要整理好消息：text（可带 buttons、links）和 card（一次性告知单）。
  show(m) {
    if (m.type === "text" && (m.text || (m.buttons && m.buttons.length))) {
      this.add({ role: "bot", kind: "text", text: m.text, buttons: m.buttons || [], links: m.links || [] });
    } else if (m.type === "card" && Array.isArray(m.sections) && m.sections.length) {
      // 一次性告知：把刚收到的长文字换成分栏卡片（材料做成核对清单），文字仍保留供复制。
      this.noticeCard(m);
      if (m.sheet_url) this.add({ role: "bot", kind: "card", title: m.title, sheetUrl: m.sheet_url });
    } else if (m.type === "card" && m.sheet_url) {
      this.add({ role: "bot", kind: "card", title: m.title, sheetUrl: m.sheet_url });
    }
    // 其他类型（如供语音播报的 speech）由别的终端使用，这里不显示。
  },

  noticeCard(m) {
    const items = this.data.items.slice();
    const last = items[items.length - 1];
    if (!last || last.role !== "bot" || last.kind !== "text") return;
    const sections = m.sections.filter((s) => s && typeof s.heading === "string").map((s) => ({
      heading: s.heading,
      lines: (s.lines || []).filter((l) => typeof l === "string"),
      materials: (s.materials || []).filter((x) => x && typeof x.name === "string").map((x) => ({
        name: x.name,
        facts: [x.form, x.copies ? x.copies + "份" : "", x.required === false ? "特定情形需要" : ""]
          .filter(Boolean).join(" · "),
        later: x.deferrable === true, promise: x.promise_ok === true,
      })),
    }));
    items[items.length - 1] = Object.assign({}, last, { kind: "notice", title: m.title, sections });
    this.setData({ items });
  },

  // 小程序不能直接打开外部网页：复制链接，市民可在浏览器中打开、打印。
  // （若告知单所在域名已登记为“业务域名”，也可以改用 <web-view src="..."> 页面直接打开。）
  onCopy(e) {
    wx.setClipboardData({
      data: e.currentTarget.dataset.url,
      success: () => wx.showToast({ title: "链接已复制，请在浏览器中打开", icon: "none", duration: 2500 }),
    });
  },
});
