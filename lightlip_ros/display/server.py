"""aiohttp server of the web display: the page, its assets, and one WebSocket per browser.

The server runs its asyncio loop in a thread of its own; producers in other threads (the ROS
executor) hand it packets through thread-safe calls. Every browser has bounded queues: when one reads
too slowly its oldest frames are dropped (and counted) instead of delaying everything after them.

WebSocket protocol (server -> page):
- binary: PACKET_HEADER + payload; kind 1 = a JPEG frame, kind 2 = mono F32LE audio (sample_rate
  set). stamp: seconds on the stamp timeline (frame: the audio time it shows; audio: its first sample).
- text JSON: {"type": "hello" | "config" | "talk_status" | "server" | "pong", ...}.
page -> server: {"type": "ping", "page_time": ms}, answered by a pong carrying the server's clock, so
that the page maps stamps onto its own clock (NTP-style, keeping the fastest round trip).
"""
import asyncio
import collections
import json
import socket
import struct
import threading
from pathlib import Path

from aiohttp import WSMsgType, web

from ..errors import LightLipError

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE_FILES = ("index.html", "display.js", "display.css")

# kind (u8), 3 bytes padding, sample rate (u32, 0 for frames), stamp in seconds (f64), sequence number
# (u32, per kind), 4 bytes padding: 24 bytes, so that the float32 payload is aligned for the page.
PACKET_HEADER = struct.Struct("<B3xIdI4x")
KIND_FRAME = 1
KIND_AUDIO = 2

# Audio is never dropped for a slow browser before this many chunks are waiting (about 10 s of 40 ms
# chunks): silence in the middle of a word is worse than a late frame.
MAX_QUEUED_AUDIO_CHUNKS = 256
MAX_QUEUED_CONTROL = 64
SERVER_STATS_PERIOD_S = 1.0
DROP_WARNING_PERIOD_S = 5.0


class ServerStartError(LightLipError, RuntimeError):
    """The server could not listen on the requested address (one readable line)."""


def _listen(address, port):
    """A listening TCP socket on address:port (port 0: a free one)."""
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ServerStartError(f"cannot use address {address!r}: {error.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    try:
        return socket.create_server(sockaddr, family=family)
    except OSError as error:
        raise ServerStartError(f"cannot listen on {address} port {port}: {error.strerror}") from None


class _DropOldestQueue:
    """A FIFO of at most `limit` items that makes room by dropping its oldest, and counts them."""

    def __init__(self, limit):
        self.items = collections.deque()
        self.limit = limit
        self.dropped = 0

    def put(self, item):
        """Queues item; True when the oldest one had to go for it."""
        full = len(self.items) >= self.limit
        if full:
            self.items.popleft()
            self.dropped += 1
        self.items.append(item)
        return full


class _Browser:
    """One connected page: its WebSocket and what waits to be sent to it."""

    def __init__(self, websocket, peer, max_queued_frames):
        self.websocket = websocket
        self.peer = peer
        self.control = _DropOldestQueue(MAX_QUEUED_CONTROL)
        self.audio = _DropOldestQueue(MAX_QUEUED_AUDIO_CHUNKS)
        self.frames = _DropOldestQueue(max_queued_frames)
        self.frames_dropped_reported = 0
        self.wake = asyncio.Event()

    def offer(self, queue, message):
        """Queues a message and wakes the sender; True when an older one was dropped for it."""
        self.wake.set()
        return queue.put(message)

    def next_message(self):
        """Control messages first (clock pongs must not wait behind frames), then audio, then frames."""
        for queue in (self.control, self.audio, self.frames):
            if queue.items:
                return queue.items.popleft()
        return None


class DisplayServer:
    """Serves the display page on address:port and streams frames, audio and status to every browser.

    clock(): seconds on the stamp timeline (the ROS clock), for the pages' clock mapping.
    logger: has info() and warning() (an rclpy logger).
    The constructor binds the socket (ServerStartError when it cannot); start() serves; stop() closes
    every page's connection and joins the thread. publish_*() and set_config() may be called from any
    thread.
    """

    def __init__(self, address, port, clock, logger, max_queued_frames=12, config=None):
        missing = [name for name in PAGE_FILES if not (STATIC_DIR / name).is_file()]
        if missing:
            raise ServerStartError(f"the display page's files are missing from {STATIC_DIR} "
                                   f"({', '.join(missing)}): reinstall lightlip_ros")
        self._socket = _listen(address, port)
        self._clock = clock
        self._logger = logger
        self._max_queued_frames = max_queued_frames
        self._config = dict(config or {})
        self._talk_status = None
        self._browsers = set()
        self._sequence = {KIND_FRAME: 0, KIND_AUDIO: 0}
        self._received = {KIND_FRAME: 0, KIND_AUDIO: 0}
        self._dropped = {KIND_FRAME: 0, KIND_AUDIO: 0}
        self._loop = asyncio.new_event_loop()
        self._runner = None
        self._ready = threading.Event()
        self._start_error = None
        self._thread = threading.Thread(target=self._run, name="face_display_web", daemon=True)

    @property
    def port(self):
        return self._socket.getsockname()[1]

    @property
    def url(self):
        host = self._socket.getsockname()[0]
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    @property
    def browser_count(self):
        return len(self._browsers)

    def stats(self):
        """Counters since start: packets received, and dropped for browsers that read too slowly."""
        return {"browsers": len(self._browsers),
                "frames_received": self._received[KIND_FRAME],
                "audio_chunks_received": self._received[KIND_AUDIO],
                "frames_dropped": self._dropped[KIND_FRAME],
                "audio_chunks_dropped": self._dropped[KIND_AUDIO]}

    def start(self, timeout_s=10.0):
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise ServerStartError(f"the web server did not start within {timeout_s:.0f} s")
        if self._start_error is not None:
            raise ServerStartError(f"the web server did not start: {self._start_error}")

    def stop(self, timeout_s=5.0):
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout_s)
        self._socket.close()

    # --- producers (any thread) ---------------------------------------------------------------
    def publish_frame(self, stamp_s, jpeg):
        self._call_soon(self._fan_out, KIND_FRAME, 0, stamp_s, jpeg)

    def publish_audio(self, stamp_s, sample_rate, pcm_f32le):
        """Mono float32 little-endian samples, the first at stamp_s."""
        self._call_soon(self._fan_out, KIND_AUDIO, sample_rate, stamp_s, pcm_f32le)

    def publish_talk_status(self, status):
        self._call_soon(self._set_talk_status, dict(status))

    def set_config(self, **values):
        self._call_soon(self._update_config, values)

    def _call_soon(self, callback, *args):
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the loop is closed: the display is shutting down and nobody is watching

    # --- inside the loop ------------------------------------------------------------------------
    def _fan_out(self, kind, sample_rate, stamp_s, payload):
        self._received[kind] += 1
        packet = PACKET_HEADER.pack(kind, sample_rate, stamp_s, self._sequence[kind] & 0xFFFFFFFF) + payload
        self._sequence[kind] += 1
        for browser in self._browsers:
            self._dropped[kind] += browser.offer(browser.frames if kind == KIND_FRAME else browser.audio, packet)

    def _set_talk_status(self, status):
        self._talk_status = status
        self._broadcast({"type": "talk_status", **status})

    def _update_config(self, values):
        self._config.update(values)
        self._broadcast({"type": "config", **self._config})

    def _broadcast(self, message):
        text = json.dumps(message)
        for browser in self._browsers:
            browser.offer(browser.control, text)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except Exception as error:  # reported to start() in the caller's thread
            self._start_error = error
            self._loop.close()
            return
        finally:
            self._ready.set()
        stats_task = self._loop.create_task(self._report_periodically())
        try:
            self._loop.run_forever()
        finally:
            stats_task.cancel()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

    async def _serve(self):
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/ws", self._websocket)
        app.router.add_static("/static/", STATIC_DIR)
        app.on_shutdown.append(self._close_browsers)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=3.0)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()

    async def _index(self, request):
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def _websocket(self, request):
        websocket = web.WebSocketResponse(heartbeat=10.0, max_msg_size=1 << 16)
        await websocket.prepare(request)
        peer = request.remote or "?"
        browser = _Browser(websocket, peer, self._max_queued_frames)
        browser.offer(browser.control, json.dumps({"type": "hello", **self._config}))
        if self._talk_status is not None:
            browser.offer(browser.control, json.dumps({"type": "talk_status", **self._talk_status}))
        self._browsers.add(browser)
        self._logger.info(f"browser {peer} connected ({len(self._browsers)} watching)")
        sender = asyncio.ensure_future(self._send(browser))
        try:
            async for message in websocket:
                if message.type == WSMsgType.TEXT:
                    self._answer(browser, message.data)
        finally:
            self._browsers.discard(browser)
            sender.cancel()
            self._logger.info(f"browser {peer} disconnected ({len(self._browsers)} watching; "
                              f"{browser.frames.dropped} frames dropped for it)")
        return websocket

    def _answer(self, browser, text):
        try:
            message = json.loads(text)
        except ValueError:
            return  # not ours: pages only send pings
        if isinstance(message, dict) and message.get("type") == "ping":
            browser.offer(browser.control, json.dumps(
                {"type": "pong", "page_time": message.get("page_time"), "server_time": self._clock()}))

    async def _send(self, browser):
        websocket = browser.websocket
        try:
            while not websocket.closed:
                await browser.wake.wait()
                browser.wake.clear()
                while (message := browser.next_message()) is not None:
                    if isinstance(message, str):
                        await websocket.send_str(message)
                    else:
                        await websocket.send_bytes(message)
        except (ConnectionError, RuntimeError):
            pass  # the page went away; its handler cleans up

    async def _report_periodically(self):
        """Tells every page what was dropped for it, and warns (at most every few seconds) when a
        browser cannot keep up."""
        since_warning = DROP_WARNING_PERIOD_S
        while True:
            await asyncio.sleep(SERVER_STATS_PERIOD_S)
            since_warning += SERVER_STATS_PERIOD_S
            for browser in self._browsers:
                dropped = browser.frames.dropped
                browser.offer(browser.control, json.dumps({
                    "type": "server", "frames_received": self._received[KIND_FRAME],
                    "audio_chunks_received": self._received[KIND_AUDIO], "frames_dropped": dropped,
                    "audio_chunks_dropped": browser.audio.dropped, "browsers": len(self._browsers)}))
                if since_warning >= DROP_WARNING_PERIOD_S and dropped > browser.frames_dropped_reported:
                    self._logger.warning(f"browser {browser.peer} reads too slowly: dropped "
                                         f"{dropped - browser.frames_dropped_reported} of its oldest frames")
                    browser.frames_dropped_reported = dropped
                    since_warning = 0.0

    async def _close_browsers(self, app):
        for browser in list(self._browsers):
            await browser.websocket.close(code=1001, message=b"display stopped")
