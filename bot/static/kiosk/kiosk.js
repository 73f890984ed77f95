/* The service-hall kiosk page (served by bot/channels/kiosk.py at /webhooks/kiosk/).
 *
 * Touch, keyboard and voice: the big buttons send the most asked questions; the microphone
 * records with MediaRecorder and posts the audio to ./listen (recognised on the server, offline);
 * answers are read aloud sentence by sentence from ./speak (a WAV each, through one <audio>).
 * After KIOSK_IDLE_SECONDS without a touch the page asks "还在使用吗？" for 10 seconds, then
 * clears the conversation, stops speech and recording, and starts a new conversation id, so the
 * next person never sees the last one's questions. `?idle=N` shortens the wait (tests).
 * Everything is loaded from this server: no fonts, scripts or images from elsewhere.
 */
(function () {
  "use strict";

  var COUNTDOWN = 10;
  var HOLD_MS = 600;            // pressing the microphone longer than this = push-to-talk
  var FIRST_CHUNK = 40;         // the first spoken piece is short, so speech starts quickly
  var CHUNK = 90;
  var SPEAKING = "正在朗读答案，点“静音”可以停止";

  var $ = function (id) { return document.getElementById(id); };
  var log = $("log"), items = $("items"), statusLine = $("status"), audio = $("voice");
  var mic = $("mic"), micLabel = $("mic-label"), micHint = $("mic-hint"), muteButton = $("mute"), muteLabel = $("mute-label");
  var idleBox = $("idle"), countdownText = $("countdown"), sheetBox = $("sheet"), sheetFrame = $("sheet-frame");
  var input = $("text");

  var params = new URLSearchParams(location.search);
  var config = { top_items: [], idle_seconds: 90, voice: { listen: false, speak: false },
                 max_speak_chars: 300, record_seconds: 20, hotline: "12345" };
  var state = {
    sender: "", muted: false, busy: false, conversation: false, lastActivity: Date.now(),
    countdown: 0, speechGen: 0, requests: new Set(), recorder: null, stream: null, chunks: [],
    recordTimer: 0, pressStart: 0, startingMic: false, stopWhenStarted: false
  };
  // For tests and the hall's technicians: what was spoken and how /speak answered.
  window.kiosk = { state: state, speakLog: [], listenLog: [] };

  function newSender() {
    var bytes = new Uint8Array(8);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    state.sender = "kiosk-" + Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
    document.body.dataset.sender = state.sender;
  }

  function setStatus(text) { statusLine.textContent = text || ""; }
  function humanError(text) {  // the server's errors are "中文 (English)": show the Chinese part
    return String(text || "").replace(/\s*\([^()]*\)\s*$/, "");
  }

  function request(url, options) {
    var controller = new AbortController();
    state.requests.add(controller);
    options = options || {};
    options.signal = controller.signal;
    return fetch(url, options).finally(function () { state.requests.delete(controller); });
  }

  /* ---------- conversation ---------- */

  function scrollTo(node) {
    log.scrollTop = Math.max(0, node.offsetTop - log.offsetTop - 16);
  }

  function addMessage(cls, text) {
    var node = document.createElement("div");
    node.className = "msg " + cls;
    if (text) node.textContent = text;
    log.appendChild(node);
    scrollTo(node);
    return node;
  }

  function welcome() {
    log.textContent = "";
    var node = addMessage("bot welcome", "");
    var title = document.createElement("h2");
    title.textContent = "您好！请问您要办什么事？";
    node.appendChild(title);
    node.appendChild(document.createTextNode(
      "可以点按常办事项，按下方话筒说出您的问题（例如“身份证过期了怎么办”），或用键盘输入。" +
      "我会一次告诉您要带的材料、费用、时间和地点，还可以打印告知单带走。"));
  }

  function addUser(text, via) {
    var node = addMessage("user", "");
    if (via === "voice") {
      var tag = document.createElement("span");
      tag.className = "via";
      tag.textContent = "语音";
      node.appendChild(tag);
    }
    node.appendChild(document.createTextNode(text));
    return node;
  }

  function printButton(message) {
    var print = document.createElement("button");
    print.type = "button";
    print.className = "print";
    print.dataset.sheetUrl = message.sheet_url;
    print.dataset.printUrl = message.print_url || message.sheet_url;
    print.innerHTML = '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M7 3h10v5H7zM5 9h14a2 ' +
      '2 0 0 1 2 2v6h-4v4H7v-4H3v-6a2 2 0 0 1 2-2zm4 7v3h6v-3z" fill="currentColor"/></svg>';
    print.appendChild(document.createTextNode("打印告知单"));
    print.addEventListener("click", function () { openSheet(print.dataset.printUrl); });
    return print;
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text) node.textContent = text;
    return node;
  }

  /* The item, then each section; the materials as a checklist: what to bring, original or copy, how
     many, and whether it may be handed in later (容缺) or replaced by a written promise (承诺). */
  function notificationCard(title, sections) {
    var card = el("div", "card");
    if (typeof title === "string" && title) card.appendChild(el("h2", "card-title", title));
    sections.forEach(function (section) {
      if (!section || typeof section.heading !== "string") return;
      var part = el("section", "card-section");
      part.appendChild(el("h3", "", section.heading));
      var materials = Array.isArray(section.materials) ? section.materials : [];
      var list = el("ul", materials.length ? "checklist" : "lines");
      if (materials.length) {
        materials.forEach(function (m) {
          if (!m || typeof m.name !== "string") return;
          var row = el("li", "material");
          row.appendChild(el("span", "box", "☐"));
          row.appendChild(el("span", "name", m.name));
          var facts = [];
          if (typeof m.form === "string" && m.form) facts.push(m.form);
          if (typeof m.copies === "number" && m.copies > 0) facts.push(m.copies + "份");
          if (m.required === false) facts.push("特定情形需要");
          if (facts.length) row.appendChild(el("span", "form", facts.join(" · ")));
          if (m.deferrable === true) row.appendChild(el("span", "flag", "可容缺后补"));
          if (m.promise_ok === true) row.appendChild(el("span", "flag", "可承诺代替"));
          list.appendChild(row);
        });
      } else {
        (Array.isArray(section.lines) ? section.lines : []).forEach(function (line) {
          if (typeof line === "string") list.appendChild(el("li", "", line));
        });
      }
      part.appendChild(list);
      card.appendChild(part);
    });
    return card;
  }

  function addAnswer(message) {
    var node = addMessage("bot", "");
    if (message.kind) node.dataset.kind = message.kind;
    if (message.sheet_url) {  // the one thing to take away: at the top, not under a long notification
      var top = document.createElement("div");
      top.className = "choices first";
      top.appendChild(printButton(message));
      node.appendChild(top);
    }
    var sections = Array.isArray(message.sections) ? message.sections : [];
    if (sections.length) {  // a notification as a card (bot/contract.py), not one wall of text
      node.appendChild(notificationCard(message.title, sections));
    } else {
      var body = document.createElement("div");
      body.className = "text";
      body.textContent = message.text || "";
      node.appendChild(body);
    }
    var buttons = (message.buttons || []).filter(function (b) { return b && b.title; });
    if (buttons.length) {
      var row = document.createElement("div");
      row.className = "choices";
      buttons.forEach(function (b) {
        var button = document.createElement("button");
        button.type = "button";
        button.className = "choice";
        button.textContent = b.title;
        button.addEventListener("click", function () { ask(b.payload || b.title, "touch", b.title); });
        row.appendChild(button);
      });
      node.appendChild(row);
    }
    return node;
  }

  function ask(message, via, shown) {
    message = String(message || "").trim();
    if (!message || state.busy) return;
    state.busy = true;
    state.conversation = true;
    stopSpeech();
    var question = addUser(shown || message, via);
    var pending = addMessage("bot pending", "正在查询");
    var sender = state.sender;
    request("webhook", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sender: sender, message: message, metadata: { via: via || "touch" } })
    }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(humanError(body && body.error) || "请求失败");
        return body;
      });
    }).then(function (messages) {
      if (sender !== state.sender) return;  // the conversation was cleared meanwhile
      pending.remove();
      var speech = [];
      (messages || []).forEach(function (m) {
        if (!m || !m.text) return;
        addAnswer(m);
        if (m.speech) speech.push(m.speech);
      });
      scrollTo(question);  // the question on top, the answer read from its start
      say(speech.join(""));
    }).catch(function (error) {
      if (error && error.name === "AbortError") return;
      pending.remove();
      addMessage("bot", "抱歉，系统暂时繁忙，没能回答您的问题。请稍后再试；也可以拨打 " + config.hotline +
        "，或到“办不成事反映窗口”寻求帮助。");
    }).finally(function () {
      state.busy = false;
      touched();
    });
  }

  /* ---------- speech output ---------- */

  function pieces(text) {
    var max = Math.min(config.max_speak_chars || 300, CHUNK);
    var sentences = String(text).match(/[^。！？!?]+[。！？!?]*/g) || [];
    var out = [], current = "";
    sentences.forEach(function (s) {
      s = s.trim();
      while (s.length > max) {  // a very long sentence: cut at a comma
        var cut = Math.max(s.lastIndexOf("，", max), s.lastIndexOf("、", max), s.lastIndexOf("；", max));
        cut = cut > 0 ? cut + 1 : max;
        if (current) { out.push(current); current = ""; }
        out.push(s.slice(0, cut));
        s = s.slice(cut);
      }
      var limit = out.length ? max : FIRST_CHUNK;
      if (current && (current + s).length > limit) { out.push(current); current = ""; }
      current += s;
    });
    if (current) out.push(current);
    return out.filter(function (p) { return p.replace(/[，。！？、；：\s]/g, ""); });
  }

  function fetchSpeech(text, gen) {
    return request("speak", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text: text })
    }).then(function (r) {
      return r.blob().then(function (blob) {
        window.kiosk.speakLog.push({ text: text, status: r.status, type: blob.type, size: blob.size });
        if (r.status === 503) {
          config.voice.speak = false;
          setStatus("语音播报暂时不可用，请看屏幕上的文字");
        }
        return r.ok && gen === state.speechGen ? blob : null;
      });
    }).catch(function () { return null; });
  }

  function play(blob, gen) {
    return new Promise(function (resolve) {
      if (gen !== state.speechGen) return resolve();
      var url = URL.createObjectURL(blob);
      var done = function () {
        audio.removeEventListener("ended", done);
        audio.removeEventListener("error", done);
        audio.removeEventListener("pause", done);
        URL.revokeObjectURL(url);
        audio.dataset.state = "idle";
        if (statusLine.textContent === SPEAKING) setStatus("");
        resolve();
      };
      audio.addEventListener("ended", done);
      audio.addEventListener("error", done);
      audio.addEventListener("pause", done);
      audio.src = url;
      audio.dataset.state = "playing";
      setStatus(SPEAKING);
      var started = audio.play();
      if (started && started.catch) started.catch(done);  // autoplay refused: the text is on screen
    });
  }

  function say(text) {
    var gen = ++state.speechGen;
    if (state.muted || !config.voice.speak || !text) return Promise.resolve();
    var parts = pieces(text);
    audio.dataset.text = text;
    var next = parts.length ? fetchSpeech(parts[0], gen) : null;
    var i = 0;
    function step() {
      if (!next || gen !== state.speechGen) return Promise.resolve();
      return next.then(function (blob) {
        if (gen !== state.speechGen) return;
        i += 1;
        next = i < parts.length ? fetchSpeech(parts[i], gen) : null;
        return (blob ? play(blob, gen) : Promise.resolve()).then(function () { touched(); return step(); });
      });
    }
    return step();
  }

  function stopSpeech() {
    state.speechGen += 1;
    if (!audio.paused) audio.pause();
    audio.removeAttribute("src");
    audio.dataset.state = "idle";
    if (statusLine.textContent === SPEAKING) setStatus("");
  }

  function setMuted(muted) {
    state.muted = muted;
    muteButton.setAttribute("aria-pressed", muted ? "true" : "false");
    muteLabel.textContent = muted ? "已静音" : "静音";
    if (muted) stopSpeech();
  }

  /* ---------- microphone ---------- */

  function voiceInputPossible() {
    return !!(config.voice.listen && navigator.mediaDevices && navigator.mediaDevices.getUserMedia &&
              window.MediaRecorder);
  }

  function showMic() {
    var recording = !!state.recorder;
    mic.disabled = !voiceInputPossible();
    mic.classList.toggle("recording", recording);
    mic.setAttribute("aria-pressed", recording ? "true" : "false");
    var hint = "也可以按住说话，松开结束";
    if (mic.disabled) { micLabel.textContent = "语音暂不可用，请点按或输入"; hint = ""; }
    else if (recording) { micLabel.textContent = "正在听…"; hint = "说完请点这里结束"; }
    else if (mic.classList.contains("busy")) { micLabel.textContent = "正在识别…"; hint = "请稍候"; }
    else micLabel.textContent = "点击说话";
    micHint.textContent = hint;
  }

  function recorderType() {
    var types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
    for (var i = 0; i < types.length; i++) {
      if (MediaRecorder.isTypeSupported && MediaRecorder.isTypeSupported(types[i])) return types[i];
    }
    return "";
  }

  function releaseMic() {
    clearTimeout(state.recordTimer);
    if (state.stream) state.stream.getTracks().forEach(function (t) { t.stop(); });
    state.stream = null;
    state.recorder = null;
  }

  function startRecording() {
    if (state.recorder || state.startingMic || state.busy || !voiceInputPossible()) return;
    stopSpeech();  // the kiosk must not hear itself
    state.startingMic = true;
    state.stopWhenStarted = false;
    state.cancelWhenStarted = false;
    navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } })
      .then(function (stream) {
        state.startingMic = false;
        var type = recorderType();
        var recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
        state.stream = stream;
        state.recorder = recorder;
        state.chunks = [];
        recorder.ondataavailable = function (e) { if (e.data && e.data.size) state.chunks.push(e.data); };
        recorder.onstop = function () {
          var blob = new Blob(state.chunks, { type: recorder.mimeType || type || "audio/webm" });
          var cancelled = recorder.cancelled;
          releaseMic();
          showMic();
          if (!cancelled) recognise(blob);
        };
        recorder.start(250);
        state.recordTimer = setTimeout(stopRecording, (config.record_seconds || 20) * 1000);
        setStatus("正在听，请说出您要办的事，说完点击话筒");
        showMic();
        if (state.stopWhenStarted) stopRecording(state.cancelWhenStarted);
      })
      .catch(function () {
        state.startingMic = false;
        releaseMic();
        showMic();
        setStatus("无法使用话筒，请点按屏幕上的按钮或用键盘输入");
      });
  }

  function stopRecording(cancel) {
    if (state.startingMic) { state.stopWhenStarted = true; state.cancelWhenStarted = !!cancel; return; }
    var recorder = state.recorder;
    if (!recorder) return;
    recorder.cancelled = !!cancel;
    if (recorder.state !== "inactive") recorder.stop(); else releaseMic();
  }

  function notHeard(reason) {
    var text = reason || "抱歉，没有听清您说的话。请靠近话筒、说慢一点再试一次，也可以点按常办事项或用键盘输入。";
    addMessage("bot", text).dataset.kind = "not_heard";
    say(reason ? "" : "抱歉，没有听清，请再说一遍。");
  }

  function recognise(blob) {
    if (blob.size < 800) { setStatus(""); notHeard(); return; }
    mic.classList.add("busy");
    showMic();
    setStatus("正在识别您说的话…");
    var sender = state.sender;
    request("listen", { method: "POST", headers: { "Content-Type": blob.type || "application/octet-stream" },
                        body: blob })
      .then(function (r) {
        return r.json().then(function (body) {
          window.kiosk.listenLog.push({ status: r.status, text: body && body.text, error: body && body.error,
                                        size: blob.size, type: blob.type });
          return { ok: r.ok, status: r.status, body: body || {} };
        });
      })
      .then(function (result) {
        if (sender !== state.sender) return;
        setStatus("");
        if (result.ok && result.body.text) { ask(result.body.text, "voice"); return; }
        state.conversation = true;
        if (result.ok) { notHeard(); return; }
        if (result.status === 503) {
          config.voice.listen = false;
          notHeard("抱歉，语音识别暂时不可用。请点按常办事项或用键盘输入您的问题。");
        } else {
          notHeard("抱歉，" + (humanError(result.body.error) || "这段录音无法识别") + "。也可以点按常办事项或用键盘输入。");
        }
      })
      .catch(function (error) {
        if (error && error.name === "AbortError") return;
        setStatus("");
        notHeard("抱歉，语音识别暂时不可用。请点按常办事项或用键盘输入您的问题。");
      })
      .finally(function () {
        mic.classList.remove("busy");
        showMic();
        touched();
      });
  }

  /* ---------- printing ---------- */

  function printWindow(win) {  // tests replace window.kioskPrint to count prints
    if (typeof window.kioskPrint === "function") return window.kioskPrint(win);
    try { win.focus(); win.print(); } catch (e) { setStatus("请到服务窗口打印告知单"); }
  }

  function openSheet(url) {
    stopSpeech();
    sheetBox.hidden = false;
    sheetFrame.onload = function () {
      sheetFrame.onload = null;
      if (!sheetBox.hidden && sheetFrame.contentWindow) printWindow(sheetFrame.contentWindow);
    };
    sheetFrame.src = url;
    setStatus("正在打印告知单，请在下方出纸口取走");
  }

  function closeSheet() {
    sheetBox.hidden = true;
    sheetFrame.onload = null;
    sheetFrame.src = "about:blank";
    setStatus("");
  }

  /* ---------- idle reset ---------- */

  function touched() {
    state.lastActivity = Date.now();
    if (!idleBox.hidden) { idleBox.hidden = true; state.countdown = 0; }
  }

  function reset() {
    stopSpeech();
    stopRecording(true);
    releaseMic();
    state.requests.forEach(function (c) { c.abort(); });
    state.requests.clear();
    state.busy = false;
    state.conversation = false;
    state.countdown = 0;
    mic.classList.remove("busy");
    idleBox.hidden = true;
    closeSheet();
    input.value = "";
    if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
    setMuted(false);
    newSender();
    welcome();
    log.scrollTop = 0;
    setStatus("");
    showMic();
    state.lastActivity = Date.now();
  }

  function tick() {
    var idleMs = state.idleSeconds * 1000;
    var inUse = state.conversation || input.value || !sheetBox.hidden;
    var working = state.busy || state.recorder || state.startingMic || audio.dataset.state === "playing";
    if (!inUse || working) { if (working) state.lastActivity = Date.now(); return; }
    if (state.countdown > 0) {
      state.countdown -= 1;
      countdownText.textContent = String(state.countdown);
      if (state.countdown === 0) reset();
    } else if (Date.now() - state.lastActivity >= idleMs) {
      state.countdown = COUNTDOWN;
      countdownText.textContent = String(COUNTDOWN);
      idleBox.hidden = false;
      stopSpeech();
    }
  }

  /* ---------- start ---------- */

  function renderItems() {
    items.textContent = "";
    config.top_items.forEach(function (item) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "item";
      button.textContent = item.label;
      button.dataset.query = item.query;
      button.addEventListener("click", function () { ask(item.query, "touch", item.query); });
      items.appendChild(button);
    });
  }

  function bind() {
    ["pointerdown", "keydown", "input", "wheel", "touchstart"].forEach(function (type) {
      document.addEventListener(type, touched, { capture: true, passive: true });
    });
    document.addEventListener("contextmenu", function (e) { e.preventDefault(); });
    $("restart").addEventListener("click", reset);
    $("stay").addEventListener("click", touched);
    muteButton.addEventListener("click", function () { setMuted(!state.muted); });
    $("sheet-close").addEventListener("click", closeSheet);
    $("sheet-print").addEventListener("click", function () {
      if (sheetFrame.contentWindow) printWindow(sheetFrame.contentWindow);
    });
    $("typed").addEventListener("submit", function (e) {
      e.preventDefault();
      var text = input.value.trim();
      if (!text) return;
      input.value = "";
      input.blur();
      ask(text, "keyboard");
    });
    // Tap to start, tap again to stop; or hold while speaking and let go.
    mic.addEventListener("pointerdown", function (e) {
      if (mic.disabled || e.button > 0) return;
      if (state.recorder || state.startingMic) { state.pressStart = 0; stopRecording(); return; }
      state.pressStart = Date.now();
      startRecording();
    });
    mic.addEventListener("pointerup", function () {
      if (state.pressStart && Date.now() - state.pressStart > HOLD_MS) stopRecording();
      state.pressStart = 0;
    });
    mic.addEventListener("keydown", function (e) {
      if (e.key !== "Enter" && e.key !== " ") return;
      e.preventDefault();
      if (state.recorder || state.startingMic) stopRecording(); else startRecording();
    });
  }

  function start() {
    var idle = parseInt(params.get("idle") || "", 10);
    bind();
    newSender();
    welcome();
    showMic();
    fetch("config", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (c) {
      config = Object.assign(config, c);
    }).catch(function () {
      setStatus("暂时无法连接服务，请稍后再试");
    }).finally(function () {
      state.idleSeconds = idle > 0 && idle <= 3600 ? idle : (config.idle_seconds || 90);
      renderItems();
      showMic();
      if (!config.voice.listen && !config.voice.speak) setStatus("语音暂不可用：请点按事项或用键盘输入");
      document.body.dataset.ready = "true";
      setInterval(tick, 1000);
    });
  }

  start();
})();
