"""`tuneboard <command>` / `python -m tuneboard <command>`: the engine's commands plus the web UI's.

This sits above engine/ and webui/ so neither imports the other's commands: the engine runs its own table
(`python -m engine <command>`, what runs spawn), the UI imports the engine, and only this table knows both.
Options are declared here as in engine/cli.py and parsed by its dispatcher.
"""
from __future__ import annotations

from engine.args import INFER, TRAIN
from engine.cli import COMMANDS as ENGINE_COMMANDS, HOST, Command, dispatch, opt, port_number

SERVE = (
    HOST,
    opt("--port", type=port_number, metavar="P", help=("port (default $GRADIO_SERVER_PORT or 7860); "
                                                       "$GRADIO_SERVER_NAME sets the host",
                                                       "端口（默认 $GRADIO_SERVER_PORT 或 7860）；"
                                                       "$GRADIO_SERVER_NAME 设置地址")),
    opt("--share", action="store_true", help=("also serve on a public gradio.live link (off by default)",
                                              "同时通过公开的 gradio.live 链接提供服务（默认关闭）")),
    opt("--lang", choices=("en", "zh"), help=("language of the page (default en)", "页面语言（默认 en）")),
    opt("--auth", action="append", metavar="USER:PASSWORD",
        help=("ask for this login (repeatable; --auth-file keeps it out of `ps`)",
              "要求此登录（可重复；--auth-file 可避免密码出现在 `ps` 中）")),
    opt("--auth-file", action="append", metavar="FILE", help=("USER:PASSWORD lines to log in with",
                                                              "登录用户文件，每行 USER:PASSWORD")),
)

UI_COMMANDS: dict[str, Command] = {
    "webui": Command("webui.launch:webui_cli", ("launch the web UI (default 127.0.0.1:7860; paths typed into the "
                                                "page stay inside data/, saves/, models/ and $TUNEBOARD_ROOTS)",
                                                "启动 Web 界面（默认 127.0.0.1:7860；页面中输入的路径限于 data/、"
                                                "saves/、models/ 与 $TUNEBOARD_ROOTS）"),
                     SERVE, args=TRAIN, lists_args=False),
    "webchat": Command("webui.launch:webchat_cli", ("serve the chat tab alone in the browser",
                                                    "在浏览器中单独提供对话页"), SERVE, args=INFER),
}

COMMANDS: dict[str, Command] = {**ENGINE_COMMANDS, **UI_COMMANDS}


def main(argv: list[str] | None = None) -> int:
    return dispatch(COMMANDS, argv, "tuneboard")
