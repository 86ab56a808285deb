"use strict";
// LightLip face display: presents face frames and speech at (stamp + presentation delay).
//
// Stamps are seconds on the stamp timeline (the talking-face node's input audio clock, which the
// display node's clock shares). The page maps that timeline onto its own clock, performance.now(),
// with NTP-style pings to the display node. Frames are drawn in the animation frame nearest to their
// due time; audio chunks are scheduled on the AudioContext, whose clock is mapped onto
// performance.now() with getOutputTimestamp() (which includes the output latency). For every frame
// put on screen the page records when the audio sample of the same stamp plays: the audio-to-picture
// offset (positive: the sound comes after the picture).
//
// Everything measured is in window.lightlipStats (read by tests and by curious people in a console).

(() => {
  const HEADER_BYTES = 24;              // lightlip_ros/display/server.py PACKET_HEADER
  const KIND_FRAME = 1;
  const KIND_AUDIO = 2;
  const HISTORY = 3000;                 // records kept per list (2 minutes at 25 fps)
  const STATUS_WINDOW = 250;            // frames summarised in the status line (10 s at 25 fps)
  const MAX_PENDING_FRAMES = 250;       // decoded frames waiting for their time (hidden tab: no rAF)
  const AUDIO_RESYNC_S = 0.015;         // a continuing chunk this far from its stamp time is rescheduled
  const AUDIO_START_MARGIN_S = 0.005;   // earliest start after AudioContext.currentTime
  const AUDIO_MATCH_WAIT_MS = 2000;     // how long a shown frame waits for the audio of its stamp
  const AUTO_DELAY_WINDOW_MS = 5000;    // lags that auto delay looks back on
  const AUTO_DELAY_STEP_MS = 10;
  const AUTO_DELAY_HYSTERESIS_MS = 40;  // auto delay only decreases by more than this
  const OUTPUT_CLOCK_SAMPLES = 64;
  const CLOCK_SAMPLES = 16;
  const PING_BURST = 5;
  const PING_BURST_PERIOD_MS = 100;
  const PING_PERIOD_MS = 2000;
  const RECONNECT_MS = 1000;
  const STATUS_PERIOD_MS = 500;

  const params = new URLSearchParams(location.search);
  if (params.get("status") === "0") document.body.classList.add("no-status");

  const stats = {
    connected: false,
    connections: 0,
    clockSynced: false,
    clockOffsetMs: null,         // stamp timeline (ms) minus performance.now()
    clockRttMs: null,
    delayMs: null,               // presentation delay in effect
    autoDelay: false,
    lagMsMax: null,              // largest (arrival - stamp) over the auto delay window
    framesReceived: 0,
    framesLost: 0,               // gaps in the sequence numbers (dropped before reaching the page)
    framesDecoded: 0,
    framesUndecodable: 0,
    framesRendered: 0,
    framesSkipped: 0,            // superseded by a later frame before their turn
    framesLate: 0,               // decoded after their due time
    audioState: "off",           // AudioContext state, or "off" when the display plays no audio
    audioChunksReceived: 0,
    audioChunksScheduled: 0,
    audioChunksUnplayed: 0,      // arrived while sound was off, suspended or the clock unknown
    audioChunksLate: 0,          // entirely past their time: not played
    audioLateMs: 0,              // sound not played because it came after its time (ms)
    audioRestarts: 0,            // chunks not continuing the previous one (new utterance or resync)
    // {stamp, lagMs, dueMs, drawnMs, presentedMs, audioMs, offsetMs}: page times in ms
    // (performance.now()); lagMs: arrival minus stamp; presentedMs: the start of the animation frame
    // after the one that drew it (the next vsync).
    frames: [],
    // {stamp, samples, sampleRate, startCtx, startMs, skippedS}: where each chunk was scheduled.
    audio: [],
    offsets: null,               // summary of offsetMs over the last STATUS_WINDOW frames with audio
    displayFps: 0,
    rafIntervalMs: 1000 / 60,
    talkStatus: null,            // the talking-face node's last TalkStatus
    server: null,                // the display node's counters for this page
  };
  window.lightlipStats = stats;

  const pushBounded = (list, item) => {
    list.push(item);
    if (list.length > HISTORY) list.splice(0, list.length - HISTORY);
  };
  const median = (values) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  };
  const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

  // --- stamp timeline <-> page clock --------------------------------------------------------------
  const clock = {
    samples: [],
    reset() {
      this.samples = [];
      stats.clockSynced = false;
      stats.clockOffsetMs = stats.clockRttMs = null;
    },
    add(sentMs, serverTimeS, receivedMs) {
      this.samples.push({rtt: receivedMs - sentMs, offset: serverTimeS * 1000 - (sentMs + receivedMs) / 2});
      if (this.samples.length > CLOCK_SAMPLES) this.samples.shift();
      // The fastest round trip bounds the error best (half its asymmetry at most).
      const best = this.samples.reduce((a, b) => (b.rtt < a.rtt ? b : a));
      stats.clockOffsetMs = best.offset;
      stats.clockRttMs = best.rtt;
      stats.clockSynced = true;
    },
    pageMs(stampS) {
      return stampS * 1000 - stats.clockOffsetMs;
    },
  };

  // --- presentation delay (fixed, or raised to the measured lag when auto) ------------------------
  const delay = {
    configuredMs: 400,
    marginMs: 40,
    pendingMs: null,
    lags: [],
    configure(config) {
      if (config.presentation_delay_ms !== undefined) this.configuredMs = config.presentation_delay_ms;
      if (config.auto_delay_margin_ms !== undefined) this.marginMs = config.auto_delay_margin_ms;
      if (config.auto_delay !== undefined) stats.autoDelay = config.auto_delay;
      if (stats.delayMs === null) stats.delayMs = this.configuredMs;
      this.request(this.target());
    },
    target() {
      if (!stats.autoDelay || stats.lagMsMax === null) return this.configuredMs;
      const neededMs = stats.lagMsMax + audio.outputLatencyMs() + this.marginMs;
      const needed = Math.ceil(neededMs / AUTO_DELAY_STEP_MS) * AUTO_DELAY_STEP_MS;
      return Math.max(this.configuredMs, needed);
    },
    // Increases apply at once: the next chunk starts at its new time, after a gap as long as the
    // increase. Decreases wait until no sound is scheduled, since they would make chunks overlap.
    request(targetMs) {
      if (targetMs >= stats.delayMs) {
        if (targetMs > stats.delayMs) audio.forgetStream();
        stats.delayMs = targetMs;
        this.pendingMs = null;
      } else {
        this.pendingMs = targetMs;
      }
    },
    noteArrival(nowMs, stampS) {
      if (!stats.clockSynced) return;
      this.lags.push([nowMs, nowMs - clock.pageMs(stampS)]);
      while (this.lags.length && this.lags[0][0] < nowMs - AUTO_DELAY_WINDOW_MS) this.lags.shift();
      stats.lagMsMax = Math.max(...this.lags.map((lag) => lag[1]));
      if (!stats.autoDelay) return;
      const targetMs = this.target();
      if (targetMs > stats.delayMs || targetMs <= stats.delayMs - AUTO_DELAY_HYSTERESIS_MS) this.request(targetMs);
    },
    applyPendingWhenQuiet() {
      if (this.pendingMs !== null && !audio.busy()) {
        stats.delayMs = this.pendingMs;
        this.pendingMs = null;
      }
    },
    dueMs(stampS) {
      return clock.pageMs(stampS) + stats.delayMs;
    },
  };

  // --- audio --------------------------------------------------------------------------------------
  const audio = {
    context: null,
    nextStamp: null,          // stamp right after the last scheduled chunk
    nextStartCtx: null,       // context time right after the last scheduled chunk
    outputClock: [],          // recent performanceTime - contextTime * 1000 (ms)
    perfMinusCtxMs: null,
    open() {
      if (this.context) return;
      try {
        this.context = new AudioContext({latencyHint: "interactive"});
      } catch (error) {  // no audio output at all: show the face without sound
        stats.audioState = `unavailable (${error.message})`;
        return;
      }
      const showState = () => {
        stats.audioState = this.context.state;
        soundButton.hidden = this.context.state === "running";
      };
      this.context.onstatechange = showState;
      showState();
      this.context.resume().catch(() => {});  // without a user gesture the button resumes it
    },
    close() {
      if (this.context) this.context.close();
      this.context = null;
      stats.audioState = "off";
      soundButton.hidden = true;
    },
    running() {
      return this.context !== null && this.context.state === "running";
    },
    // Scheduled sound must reach the context this long before it is heard.
    outputLatencyMs() {
      if (!this.running()) return 0;
      return 1000 * ((this.context.baseLatency || 0) + (this.context.outputLatency || 0)) + 1000 * AUDIO_START_MARGIN_S;
    },
    busy() {
      return this.running() && this.nextStartCtx !== null && this.nextStartCtx > this.context.currentTime;
    },
    forgetStream() {
      this.nextStamp = this.nextStartCtx = null;
    },
    // Where the output clock is: the sample at contextTime leaves the output at performanceTime.
    trackOutputClock() {
      if (!this.running()) return;
      const stamp = this.context.getOutputTimestamp();
      if (stamp.performanceTime > 0 && stamp.contextTime > 0) {
        this.outputClock.push(stamp.performanceTime - stamp.contextTime * 1000);
        if (this.outputClock.length > OUTPUT_CLOCK_SAMPLES) this.outputClock.shift();
        this.perfMinusCtxMs = median(this.outputClock);
      } else if (this.perfMinusCtxMs === null) {
        // Not started yet: the sample being rendered now leaves after the base and output latency.
        const latencyS = (this.context.baseLatency || 0) + (this.context.outputLatency || 0);
        this.perfMinusCtxMs = performance.now() - (this.context.currentTime - latencyS) * 1000;
      }
    },
    pageMs(contextTime) {
      return contextTime * 1000 + this.perfMinusCtxMs;
    },
    contextTime(pageMs) {
      return (pageMs - this.perfMinusCtxMs) / 1000;
    },
    schedule(stampS, sampleRate, pcm) {
      this.trackOutputClock();
      const duration = pcm.length / sampleRate;
      const ideal = this.contextTime(delay.dueMs(stampS));
      let start = ideal;
      const continues = this.nextStamp !== null && Math.abs(stampS - this.nextStamp) < 1e-3;
      if (continues && Math.abs(this.nextStartCtx - ideal) < AUDIO_RESYNC_S) {
        start = this.nextStartCtx;  // sample-exact continuation: no click between chunks
      } else {
        stats.audioRestarts++;
      }
      this.nextStamp = stampS + duration;
      this.nextStartCtx = start + duration;
      const skip = Math.max(0, this.context.currentTime + AUDIO_START_MARGIN_S - start);
      if (skip >= duration) {
        stats.audioChunksLate++;
        stats.audioLateMs += 1000 * duration;
        return;
      }
      stats.audioLateMs += 1000 * skip;
      const buffer = this.context.createBuffer(1, pcm.length, sampleRate);
      buffer.copyToChannel(pcm, 0);
      const source = this.context.createBufferSource();
      source.buffer = buffer;
      source.connect(this.context.destination);
      source.start(start + skip, skip);
      const chunk = {stamp: stampS, samples: pcm.length, sampleRate, startCtx: start,
                     startMs: this.pageMs(start), skippedS: skip};
      pushBounded(stats.audio, chunk);
      stats.audioChunksScheduled++;
    },
    // Page time at which the sample with this stamp plays, or null when no scheduled sound has it.
    playMs(stampS) {
      for (let i = stats.audio.length - 1; i >= 0; i--) {
        const chunk = stats.audio[i];
        const into = stampS - chunk.stamp;
        if (into >= -1e-6 && into < chunk.samples / chunk.sampleRate) {
          return into < chunk.skippedS ? null : this.pageMs(chunk.startCtx + Math.max(0, into));
        }
        if (into > 10) break;  // chunks are in stamp order: the rest are older
      }
      return null;
    },
  };

  const soundButton = document.getElementById("enable-sound");
  soundButton.addEventListener("click", () => audio.context && audio.context.resume());

  // --- frames -------------------------------------------------------------------------------------
  const canvas = document.getElementById("face");
  const canvasContext = canvas.getContext("2d");
  const pending = [];         // decoded frames in stamp order: {stamp, bitmap}
  const awaitingAudio = [];   // shown frames whose audio is not scheduled yet
  let drawn = null;           // drawn in the last animation frame: on screen from this one on
  let lastAnimationMs = null;
  const animationIntervals = [];
  const renderTimes = [];

  function insertPending(frame) {
    let i = pending.length;
    while (i > 0 && pending[i - 1].stamp > frame.stamp) i--;
    pending.splice(i, 0, frame);
    if (pending.length > MAX_PENDING_FRAMES) {
      pending.shift().bitmap.close();
      stats.framesSkipped++;
    }
  }

  function receiveFrame(stampS, jpeg) {
    const received = performance.now();
    const lagMs = stats.clockSynced ? received - clock.pageMs(stampS) : null;
    stats.framesReceived++;
    delay.noteArrival(received, stampS);
    createImageBitmap(new Blob([jpeg], {type: "image/jpeg"})).then((bitmap) => {
      stats.framesDecoded++;
      if (stats.clockSynced && performance.now() > delay.dueMs(stampS)) stats.framesLate++;
      insertPending({stamp: stampS, lagMs, bitmap});
    }, () => {
      stats.framesUndecodable++;
    });
  }

  function matchAudio(record) {
    const audioMs = audio.playMs(record.stamp);
    if (audioMs === null) return false;
    record.audioMs = audioMs;
    record.offsetMs = audioMs - record.presentedMs;
    return true;
  }

  function onAnimationFrame(nowMs) {
    requestAnimationFrame(onAnimationFrame);
    if (lastAnimationMs !== null) {
      animationIntervals.push(nowMs - lastAnimationMs);
      if (animationIntervals.length > 60) animationIntervals.shift();
      stats.rafIntervalMs = median(animationIntervals);
    }
    lastAnimationMs = nowMs;
    audio.trackOutputClock();

    if (drawn !== null) {
      drawn.presentedMs = nowMs;
      stats.framesRendered++;
      renderTimes.push(nowMs);
      pushBounded(stats.frames, drawn);
      if (audio.running() && !matchAudio(drawn)) awaitingAudio.push(drawn);
      drawn = null;
    }
    for (let i = awaitingAudio.length - 1; i >= 0; i--) {
      const record = awaitingAudio[i];
      if (matchAudio(record) || nowMs - record.presentedMs > AUDIO_MATCH_WAIT_MS) awaitingAudio.splice(i, 1);
    }
    delay.applyPendingWhenQuiet();
    if (!stats.clockSynced) return;

    // What is drawn now is on screen at the next vsync: draw the frame due nearest to it.
    const interval = stats.rafIntervalMs;
    const limitMs = nowMs + interval + interval / 2;
    let chosen = null;
    while (pending.length && delay.dueMs(pending[0].stamp) <= limitMs) {
      if (chosen !== null) {
        chosen.bitmap.close();
        stats.framesSkipped++;
      }
      chosen = pending.shift();
    }
    if (chosen === null) return;
    if (canvas.width !== chosen.bitmap.width || canvas.height !== chosen.bitmap.height) {
      canvas.width = chosen.bitmap.width;
      canvas.height = chosen.bitmap.height;
    }
    canvasContext.drawImage(chosen.bitmap, 0, 0);
    chosen.bitmap.close();
    drawn = {stamp: chosen.stamp, lagMs: chosen.lagMs, dueMs: delay.dueMs(chosen.stamp), drawnMs: nowMs,
             presentedMs: null, audioMs: null, offsetMs: null};
  }
  requestAnimationFrame(onAnimationFrame);

  // --- connection ---------------------------------------------------------------------------------
  let socket = null;
  let pingTimer = null;
  let lastFrameSequence = null;

  function sendPing() {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({type: "ping", page_time: performance.now()}));
    }
  }

  function onControl(message) {
    switch (message.type) {
      case "hello":
      case "config":
        delay.configure(message);
        if (message.play_audio === true) audio.open();
        if (message.play_audio === false) audio.close();
        break;
      case "pong":
        clock.add(message.page_time, message.server_time, performance.now());
        break;
      case "talk_status":
        stats.talkStatus = message;
        break;
      case "server":
        stats.server = message;
        break;
      default:
        break;
    }
  }

  function onPacket(buffer) {
    const header = new DataView(buffer, 0, HEADER_BYTES);
    const kind = header.getUint8(0);
    const sampleRate = header.getUint32(4, true);
    const stampS = header.getFloat64(8, true);
    const sequence = header.getUint32(16, true);
    if (kind === KIND_FRAME) {
      if (lastFrameSequence !== null) stats.framesLost += (sequence - lastFrameSequence - 1) >>> 0;
      lastFrameSequence = sequence;
      receiveFrame(stampS, new Uint8Array(buffer, HEADER_BYTES));
    } else if (kind === KIND_AUDIO) {
      stats.audioChunksReceived++;
      delay.noteArrival(performance.now(), stampS);
      if (audio.running() && stats.clockSynced) {
        audio.schedule(stampS, sampleRate, new Float32Array(buffer, HEADER_BYTES, (buffer.byteLength - HEADER_BYTES) / 4));
      } else {
        stats.audioChunksUnplayed++;
      }
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const path = location.pathname.replace(/[^/]*$/, "ws");
    socket = new WebSocket(`${scheme}://${location.host}${path}`);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      stats.connected = true;
      stats.connections++;
      clock.reset();
      audio.forgetStream();
      lastFrameSequence = null;
      let burst = 0;
      const ping = () => {
        sendPing();
        burst++;
        pingTimer = setTimeout(ping, burst < PING_BURST ? PING_BURST_PERIOD_MS : PING_PERIOD_MS);
      };
      ping();
    };
    socket.onmessage = (event) => {
      if (typeof event.data === "string") onControl(JSON.parse(event.data));
      else onPacket(event.data);
    };
    socket.onclose = () => {
      stats.connected = false;
      clearTimeout(pingTimer);
      setTimeout(connect, RECONNECT_MS);
    };
  }
  connect();

  // --- status line --------------------------------------------------------------------------------
  const statusConnection = document.getElementById("status-connection");
  const statusNode = document.getElementById("status-node");
  const statusDisplay = document.getElementById("status-display");
  const statusSync = document.getElementById("status-sync");
  const ms = (value) => `${value >= 0 ? "+" : ""}${value.toFixed(0)}`;

  function summariseOffsets() {
    const recent = [];
    for (let i = stats.frames.length - 1; i >= 0 && recent.length < STATUS_WINDOW; i--) {
      if (stats.frames[i].offsetMs !== null) recent.push(stats.frames[i].offsetMs);
    }
    if (!recent.length) return null;
    recent.sort((a, b) => a - b);
    return {
      count: recent.length,
      p5: percentile(recent, 0.05),
      p50: percentile(recent, 0.5),
      p95: percentile(recent, 0.95),
      min: recent[0],
      max: recent[recent.length - 1],
      within40: recent.filter((offset) => Math.abs(offset) <= 40).length / recent.length,
    };
  }

  function updateStatus() {
    const now = performance.now();
    while (renderTimes.length && renderTimes[0] < now - 1000) renderTimes.shift();
    stats.displayFps = renderTimes.length;
    stats.offsets = summariseOffsets();

    statusConnection.textContent = stats.connected ? "connected" : "disconnected";
    statusConnection.className = stats.connected ? "connected" : "disconnected";

    const talk = stats.talkStatus;
    statusNode.textContent = talk === null ? "no talk_status yet" :
      `${talk.state} · ${talk.engine} ${talk.precision} · node ${talk.fps.toFixed(1)} fps · ` +
      `latency p50 ${talk.latency_ms_p50.toFixed(0)} / p95 ${talk.latency_ms_p95.toFixed(0)} ms` +
      (talk.last_error ? ` · ${talk.last_error}` : "");

    const dropped = (stats.server ? stats.server.frames_dropped : 0) + stats.framesLost;
    statusDisplay.textContent = `shown ${stats.displayFps} fps · delay ${stats.delayMs ?? "-"} ms` +
      (stats.autoDelay ? " (auto)" : "") +
      (stats.lagMsMax !== null ? ` · lag ${stats.lagMsMax.toFixed(0)} ms` : "") +
      ` · ${stats.framesLate} late · ${dropped} dropped · sound ${stats.audioState}` +
      (stats.audioLateMs ? ` (${stats.audioLateMs.toFixed(0)} ms late)` : "");

    const offsets = stats.offsets;
    statusSync.textContent = offsets === null ? "A/V offset: no frame with sound yet" :
      `A/V offset ${ms(offsets.p50)} ms (p5 ${ms(offsets.p5)}, p95 ${ms(offsets.p95)}, ` +
      `${(100 * offsets.within40).toFixed(0)}% within ±40 ms of ${offsets.count})`;
  }
  setInterval(updateStatus, STATUS_PERIOD_MS);
  updateStatus();
})();
