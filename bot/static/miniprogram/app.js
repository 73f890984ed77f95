// 政务服务导办 — 小程序示例：登录换取会话凭证，再把市民的话发给导办助手。
// A minimal mini-program for the assistant's mini-program API (bot/channels/miniprogram.py).

// 后端地址（唯一需要修改的地方）：Rasa 服务器上的小程序接口。正式发布时必须是 HTTPS 域名，
// 并在小程序管理后台“开发管理 → 开发设置 → 服务器域名 → request 合法域名”中登记。
// The one setting: where the Rasa server's mini-program channel is reachable.
const BACKEND = "https://zwfw.example.gov.cn/webhooks/miniprogram";

const TOKEN_KEY = "guide_session_token";

function post(path, data, token) {
  const header = { "Content-Type": "application/json" };
  if (token) header.Authorization = "Bearer " + token;
  return new Promise((resolve, reject) => {
    wx.request({
      url: BACKEND + path,
      method: "POST",
      data,
      header,
      timeout: 20000,
      success: resolve,
      fail: () => reject(new Error("网络连接失败，请检查网络后再试。")),
    });
  });
}

function wxLogin() {
  return new Promise((resolve, reject) => {
    wx.login({
      success: (res) => (res.code ? resolve(res.code) : reject(new Error("微信登录失败，请稍后再试。"))),
      fail: () => reject(new Error("微信登录失败，请稍后再试。")),
    });
  });
}

function failure(res, fallback) {
  return new Error((res.data && res.data.error) || fallback);
}

App({
  // wx.login → POST /login → 会话凭证，保存在本地缓存里。
  async login() {
    const code = await wxLogin();
    const res = await post("/login", { code });
    if (res.statusCode !== 200 || !res.data || !res.data.token) {
      throw failure(res, "登录失败，请稍后再试。");
    }
    wx.setStorageSync(TOKEN_KEY, res.data.token);
    return res.data.token;
  },

  // 发一句话，返回助手的回复（消息列表）。凭证缺失、过期或失效（401）时重新登录一次再发。
  async ask(message) {
    let token = wx.getStorageSync(TOKEN_KEY) || (await this.login());
    let res = await post("/webhook", { message }, token);
    if (res.statusCode === 401) {
      wx.removeStorageSync(TOKEN_KEY);
      token = await this.login();
      res = await post("/webhook", { message }, token);
    }
    if (res.statusCode !== 200 || !res.data) {
      throw failure(res, "服务暂时不可用，请稍后再试。");
    }
    return res.data.messages || [];
  },
});
