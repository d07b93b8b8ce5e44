// callvault console: small enhancements over server-rendered pages. No inline script anywhere
// (the Content-Security-Policy forbids it); everything works by keyboard.
"use strict";

(function () {
  // focus the error summary, so a screen reader hears the problem first
  var summary = document.querySelector(".error-summary");
  if (summary) { summary.focus(); }

  // --- the waveform: peaks and markers from the server, drawn as SVG
  var SVG = "http://www.w3.org/2000/svg";
  function el(name, attrs) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }
  function drawWave(fig) {
    var box = document.getElementById("wave-canvas");
    var player = document.getElementById("player");
    fetch(fig.getAttribute("data-peaks"), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error("peaks " + r.status); } return r.json(); })
      .then(function (p) {
        var W = 1000, H = 160, lane = H / 2, n = p.buckets, dur = Math.max(1, p.duration_ms);
        var svg = el("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img",
          "aria-label": "Waveform, " + (dur / 1000).toFixed(1) + " seconds, " + p.markers.length + " marked events" });
        svg.setAttribute("data-duration-ms", String(p.duration_ms));
        p.channels.forEach(function (ch, c) {
          var mid = lane * c + lane / 2, cls = c === 0 ? "bar-caller" : "bar-agent";
          var g = el("g", { "class": "channel", "data-channel": String(c) });
          ch.forEach(function (mm, i) {
            var lo = mm[0], hi = mm[1];
            var y1 = mid - hi * (lane / 2 - 2), y2 = mid - lo * (lane / 2 - 2);
            var r = el("rect", { x: (i * W / n).toFixed(2), width: Math.max(0.5, W / n - 0.2).toFixed(2),
              y: Math.min(y1, y2).toFixed(2), height: Math.max(0.5, Math.abs(y2 - y1)).toFixed(2), "class": cls,
              "data-bucket": String(i), "data-peak": Math.max(Math.abs(lo), Math.abs(hi)).toFixed(3) });
            g.appendChild(r);
          });
          svg.appendChild(g);
        });
        p.markers.forEach(function (m) {
          var x = m.start_ms / dur * W, w = Math.max(2, m.played_ms / dur * W);
          var r = el("rect", { x: x.toFixed(2), y: 0, width: w.toFixed(2), height: H, "class": "marker " + m["class"],
            "data-start-ms": String(m.start_ms), "data-played-ms": String(m.played_ms), "data-length-ms": String(m.length_ms),
            "data-seq": String(m.seq) });
          var t = el("title", {});
          t.textContent = m.label + ", " + (m.length_ms / 1000).toFixed(1) + " s";
          r.appendChild(t);
          svg.appendChild(r);
          var label = el("text", { x: (x + 3).toFixed(2), y: 12 });
          label.textContent = m.label.split(" ")[0] + " " + (m.length_ms / 1000).toFixed(1) + " s";
          svg.appendChild(label);
        });
        var head = el("line", { x1: 0, x2: 0, y1: 0, y2: H, "class": "playhead" });
        svg.appendChild(head);
        box.appendChild(svg);
        box.setAttribute("data-ready", "true");
        if (player) {
          player.addEventListener("timeupdate", function () {
            var x = (player.currentTime * 1000 / dur * W).toFixed(2);
            head.setAttribute("x1", x); head.setAttribute("x2", x);
          });
          svg.addEventListener("click", function (ev) {
            var rect = svg.getBoundingClientRect();
            player.currentTime = (ev.clientX - rect.left) / rect.width * dur / 1000;
          });
        }
      })
      .catch(function (e) {
        box.textContent = "The waveform could not be drawn (" + e.message + "). The events are listed below.";
        box.setAttribute("data-ready", "error");
      });
  }
  var fig = document.getElementById("waveform");
  if (fig) { drawWave(fig); }

  // --- export progress: poll the job, announce changes, show the download when ready
  var status = document.getElementById("export-status");
  if (status) {
    var url = status.getAttribute("data-status-url");
    var tick = function () {
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (j) {
        document.getElementById("export-state").textContent = j.status;
        document.getElementById("export-done").textContent = j.recordings_done;
        document.getElementById("export-total").textContent = j.recordings_total;
        if (j.status === "ready" || j.status === "delivered") {
          document.getElementById("export-download-line").hidden = false;
        }
        if (j.status === "planning" || j.status === "writing") { setTimeout(tick, 500); }
      }).catch(function () { setTimeout(tick, 2000); });
    };
    tick();
  }

  // --- live listen: the API's socket; mu-law or A-law or L16 decoded and played by Web Audio
  var live = document.getElementById("live");
  if (live) {
    var state = document.getElementById("live-state");
    var ctx = null, format = null, at = 0, socket = null;
    var say = function (t, s) { state.textContent = t; live.setAttribute("data-state", s); };
    var ulaw = function (u) {
      u = ~u & 0xff;
      var t = ((u & 0x0f) << 3) + 0x84;
      t <<= (u & 0x70) >> 4;
      return ((u & 0x80) ? (0x84 - t) : (t - 0x84)) / 32768;
    };
    var alaw = function (a) {
      a ^= 0x55;
      var t = (a & 0x0f) << 4, seg = (a & 0x70) >> 4;
      if (seg === 0) { t += 8; } else if (seg === 1) { t += 0x108; } else { t = (t + 0x108) << (seg - 1); }
      return ((a & 0x80) ? t : -t) / 32768;
    };
    var play = function (buf) {
      if (!ctx || !format) { return; }
      var bytes = new Uint8Array(buf), chans = format.channels, frames, i, c;
      var wide = format.codec === "L16";
      frames = wide ? bytes.length / 2 / chans : bytes.length / chans;
      if (frames < 1) { return; }
      var ab = ctx.createBuffer(chans, frames, format.sample_rate);
      var view = new DataView(buf);
      for (c = 0; c < chans; c++) {
        var out = ab.getChannelData(c);
        for (i = 0; i < frames; i++) {
          var k = i * chans + c;
          out[i] = wide ? view.getInt16(k * 2, true) / 32768 : (format.codec === "PCMA" ? alaw(bytes[k]) : ulaw(bytes[k]));
        }
      }
      var src = ctx.createBufferSource();
      src.buffer = ab; src.connect(ctx.destination);
      at = Math.max(at, ctx.currentTime + 0.05);
      src.start(at); at += ab.duration;
    };
    var open = function () {
      var proto = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(proto + location.host + live.getAttribute("data-socket"));
      socket.binaryType = "arraybuffer";
      live.setAttribute("data-frames", "0");
      socket.onopen = function () { say("Connected: listening", "listening"); };
      socket.onmessage = function (m) {
        if (typeof m.data === "string") {
          var j = JSON.parse(m.data);
          if (j.type === "start") { format = j; say("Listening", "listening"); }
          else if (j.type === "paused") { say("Paused (" + j.kind + "): no audio while the call is paused", "paused"); }
          else if (j.type === "resumed") { say("Listening: the pause has ended", "listening"); }
          else if (j.type === "lagged") { say("Listening (some audio was skipped to catch up)", "listening"); }
        } else {
          live.setAttribute("data-frames", String(Number(live.getAttribute("data-frames")) + 1));
          play(m.data);
        }
      };
      socket.onclose = function (e) {
        say(e.code === 1000 ? "The call has ended" : "Listening stopped" + (e.reason ? ": " + e.reason : ""), "closed");
      };
      socket.onerror = function () { say("The call could not be reached: it may have ended, or you may not listen to it", "closed"); };
    };
    document.getElementById("live-start").addEventListener("click", function () {
      if (!ctx) { ctx = new (window.AudioContext || window.webkitAudioContext)(); }
      ctx.resume();
    });
    document.getElementById("live-stop").addEventListener("click", function () {
      if (socket) { socket.close(1000); }
    });
    open();
  }

})();
