"""The demo's chat: a WebSocket endpoint of the App API, mounted by config.conf.

``location /ws { app chat:app }`` serves ``/ws/chat/ROOM``: every message a
client sends goes to everyone in the same room (of this worker process), as
JSON ``{"from": NAME, "text": TEXT}``; joins and leaves are announced.
"""

from __future__ import annotations

import json

from localhost import App
from localhost.server.websocket import WebSocket

app = App()

MAX_NAME = 40
MAX_TEXT = 2000


def _say(room: str, sender: str, text: str) -> None:
    app.group(room).broadcast(json.dumps({"from": sender, "text": text}))


@app.websocket("/chat/:room", subprotocols=["chat.v1"])
class Chat:
    """One instance per connection; runs on the event loop (never blocks)."""

    def on_connect(self, ws: WebSocket, room: str) -> None:
        self.name = "guest"
        self.room = room[:MAX_NAME]
        app.group(self.room).add(ws)
        welcome = {"from": "server", "text": f"welcome to #{self.room}", "room": self.room}
        ws.send(json.dumps(welcome))

    def on_message(self, ws: WebSocket, message: str | bytes) -> None:
        try:
            data = json.loads(message)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        if isinstance(data.get("name"), str) and data["name"].strip():
            joined = self.name == "guest"
            self.name = data["name"].strip()[:MAX_NAME]
            if joined:
                _say(self.room, "server", f"{self.name} joined ({len(app.group(self.room))} here)")
        text = data.get("text")
        if isinstance(text, str) and text.strip():
            _say(self.room, self.name, text[:MAX_TEXT])

    def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        if self.name != "guest":
            _say(self.room, "server", f"{self.name} left")
