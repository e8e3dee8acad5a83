"""Every UI string that is not an argument of the schema, in English and Chinese.

Argument labels and help come from engine.args (Arg.label / Arg.help); only the UI's own words live here.
`t(key, lang, **fmt)` formats with str.format.
"""
from __future__ import annotations

LANGS = ("en", "zh")
LANG_CHOICES = [("English", "en"), ("中文", "zh")]

L: dict[str, dict[str, str]] = {
    # ---- top panel
    "title": {"en": "## TuneBoard — fine-tune LLMs by pointing and clicking",
              "zh": "## TuneBoard — 点点鼠标微调大模型"},
    "lang": {"en": "Language", "zh": "语言"},
    "model_name": {"en": "Model name", "zh": "模型名称"},
    "model_name_info": {"en": "Pick a model of the registry, or Custom to type a path or hub id below.",
                        "zh": "从模型注册表中选择，或选 Custom 在下方填写路径或仓库 ID。"},
    "custom": {"en": "Custom", "zh": "自定义"},
    "compute_type": {"en": "Compute type", "zh": "计算类型"},
    "compute_type_info": {"en": "Precision for training and chat (bf16/fp16 fall back to fp32 where unsupported).",
                          "zh": "训练与对话使用的精度（不支持时 bf16/fp16 回退到 fp32）。"},
    "refresh": {"en": "Refresh", "zh": "刷新"},
    "adapter_info": {"en": "Runs under saves/ for this model and method (checkpoint-N folders included); "
                           "a path can be typed too.",
                     "zh": "saves/ 下该模型与方法的运行（含 checkpoint-N 检查点）；也可直接输入路径。"},
    "template_warn_default": {"en": "⚠ `{model}` is a chat model but the template is `default`: its answers may "
                                    "never stop. Its own template is `{tpl}`.",
                              "zh": "⚠ `{model}` 是对话模型，但模板为 `default`：回答可能不会停止。它自己的模板是 `{tpl}`。"},
    "template_warn_auto": {"en": "ℹ Template: the model's default `{tpl}`.",
                           "zh": "ℹ 模板：模型默认的 `{tpl}`。"},
    # ---- tabs
    "tab_train": {"en": "Train", "zh": "训练"},
    "tab_eval": {"en": "Evaluate & Predict", "zh": "评估与预测"},
    "tab_chat": {"en": "Chat", "zh": "对话"},
    "tab_export": {"en": "Export", "zh": "导出"},
    # ---- train tab
    "choice_stage_sft": {"en": "Supervised Fine-Tuning", "zh": "指令监督微调"},
    "choice_stage_pt": {"en": "Pre-Training", "zh": "预训练"},
    "choice_stage_rm": {"en": "Reward Modeling", "zh": "奖励模型训练"},
    "choice_stage_dpo": {"en": "DPO / ORPO / SimPO", "zh": "DPO / ORPO / SimPO 偏好优化"},
    "choice_stage_kto": {"en": "KTO", "zh": "KTO 偏好优化"},
    "dataset_info_stage": {"en": "Datasets of dataset_info.json this stage accepts ({stage}).",
                           "zh": "dataset_info.json 中适用于当前阶段（{stage}）的数据集。"},
    "dataset_error": {"en": "✗ Cannot read the datasets: {error}", "zh": "✗ 无法读取数据集：{error}"},
    "dataset_none": {"en": "⚠ No dataset in {dir} fits the stage `{stage}`.",
                     "zh": "⚠ {dir} 中没有适用于 `{stage}` 阶段的数据集。"},
    "preview_dataset": {"en": "Preview dataset", "zh": "预览数据集"},
    "preview_page": {"en": "Page", "zh": "页码"},
    "preview_samples": {"en": "Samples", "zh": "样本"},
    "preview_rendered": {"en": "As the model sees it (template applied; highlighted = trained tokens)",
                         "zh": "模型看到的文本（已套用模板；高亮部分参与训练）"},
    "preview_close": {"en": "Close preview", "zh": "关闭预览"},
    "preview_pick": {"en": "Pick a dataset first.", "zh": "请先选择数据集。"},
    "preview_info": {"en": "{dataset}: {total} samples, page {page} of {pages}.",
                     "zh": "{dataset}：共 {total} 条样本，第 {page}/{pages} 页。"},
    "trained": {"en": "trained", "zh": "训练"},
    "output_dir_info": {"en": "A name (saved under {base}) or a path. An existing run folder offers to resume.",
                        "zh": "名称（保存在 {base} 下）或路径。选择已有运行目录时可续训。"},
    "output_dir_auto": {"en": "empty: train_<date-time>", "zh": "留空：train_<日期-时间>"},
    "output_dir_auto_eval": {"en": "empty: eval_<date-time>", "zh": "留空：eval_<日期-时间>"},
    "config_path": {"en": "Config path", "zh": "配置路径"},
    "config_path_info": {"en": "YAML file for Save / Load arguments (LLaMA-Factory-style recipes load too).",
                         "zh": "保存 / 载入参数使用的 YAML 文件（也可载入 LLaMA-Factory 风格配置）。"},
    "btn_preview": {"en": "Preview command", "zh": "预览命令"},
    "btn_save": {"en": "Save arguments", "zh": "保存参数"},
    "btn_load": {"en": "Load arguments", "zh": "载入参数"},
    "btn_start": {"en": "Start", "zh": "开始"},
    "btn_abort": {"en": "Abort", "zh": "中断"},
    "btn_resume": {"en": "Resume from the last checkpoint", "zh": "从最新检查点续训"},
    "command": {"en": "Command (paste at the repo root)", "zh": "命令（在仓库根目录粘贴运行）"},
    "log": {"en": "Log", "zh": "日志"},
    "loss_plot": {"en": "Loss", "zh": "损失"},
    "saved_to": {"en": "✓ Arguments saved to `{path}`.", "zh": "✓ 参数已保存到 `{path}`。"},
    "loaded_from": {"en": "✓ Arguments loaded from `{path}`.", "zh": "✓ 已从 `{path}` 载入参数。"},
    "invalid": {"en": "✗ Please fix:", "zh": "✗ 请修改："},
    "resume_offer": {"en": "ℹ `{path}` already holds a run ({state}, last checkpoint `{ckpt}` at step {step}). "
                           "Resume it, or choose a new output dir.",
                     "zh": "ℹ `{path}` 已有一次运行（{state}，最新检查点 `{ckpt}`，第 {step} 步）。"
                           "可从该检查点续训，或换一个输出目录。"},
    "resume_no_ckpt": {"en": "ℹ `{path}` already holds a run ({state}) without a complete checkpoint: choose a "
                             "new output dir or tick overwrite.",
                       "zh": "ℹ `{path}` 已有一次运行（{state}），但没有完整的检查点：请换一个输出目录或勾选覆盖。"},
    "resume_set": {"en": "✓ Will resume from `{ckpt}`: press Start.", "zh": "✓ 将从 `{ckpt}` 续训：请点击开始。"},
    "busy": {"en": "⚠ A {command} run is already going (`{path}`). Wait for it to end or abort it first.",
             "zh": "⚠ 已有 {command} 任务在运行（`{path}`）。请等待其结束或先中断。"},
    "started": {"en": "▶ Started: `{path}`", "zh": "▶ 已开始：`{path}`"},
    "aborting": {"en": "Stopping… the trainer saves a checkpoint, then exits.", "zh": "正在中断……保存检查点后退出。"},
    "aborted_ok": {"en": "■ Aborted; no process of the run is left.", "zh": "■ 已中断，没有残留进程。"},
    "aborted_left": {"en": "⚠ Abort sent, but some processes are still alive: {pids}.",
                     "zh": "⚠ 已发送中断，但仍有进程存活：{pids}。"},
    "nothing_running": {"en": "Nothing is running.", "zh": "当前没有运行中的任务。"},
    "state_running": {"en": "… Running ({phase})", "zh": "… 运行中（{phase}）"},
    "state_finished": {"en": "✓ Finished", "zh": "✓ 已完成"},
    "state_failed": {"en": "✗ Failed: {error}", "zh": "✗ 失败：{error}"},
    "state_aborted": {"en": "■ Aborted", "zh": "■ 已中断"},
    "phase_starting": {"en": "starting", "zh": "启动中"},
    "phase_preprocessing": {"en": "preprocessing data", "zh": "预处理数据"},
    "phase_training": {"en": "training", "zh": "训练中"},
    "phase_evaluating": {"en": "evaluating", "zh": "评估中"},
    "phase_saving": {"en": "saving", "zh": "保存中"},
    "phase_predicting": {"en": "predicting", "zh": "预测中"},
    "phase_exporting": {"en": "exporting", "zh": "导出中"},
    "phase_loading": {"en": "loading model and data", "zh": "加载模型与数据"},
    "phase_running": {"en": "predicting", "zh": "预测中"},
    "progress_steps": {"en": "step {step} / {total}", "zh": "第 {step} / {total} 步"},
    "progress_wait": {"en": "waiting for the first step…", "zh": "等待第一步……"},
    "final_metrics": {"en": "Final metrics", "zh": "最终指标"},
    "adapter_at": {"en": "Result: `{path}` — pick it in the adapter box above to chat with it.",
                   "zh": "结果：`{path}` —— 在上方适配器框中选择即可对话。"},
    "run_of": {"en": "Run `{path}`", "zh": "运行 `{path}`"},
    # ---- eval tab
    "eval_output_info": {"en": "Predictions go to this folder (a name is saved under {base}).",
                         "zh": "预测结果保存到该目录（名称将保存在 {base} 下）。"},
    "btn_eval": {"en": "Start evaluation", "zh": "开始评估"},
    "eval_metrics": {"en": "Metrics", "zh": "指标"},
    "predictions_at": {"en": "Predictions: `{path}`", "zh": "预测结果：`{path}`"},
    # ---- chat tab
    "btn_load_model": {"en": "Load model", "zh": "加载模型"},
    "btn_unload_model": {"en": "Unload model", "zh": "卸载模型"},
    "model_not_loaded": {"en": "No model loaded.", "zh": "未加载模型。"},
    "model_loading": {"en": "… Loading `{model}`…", "zh": "… 正在加载 `{model}`……"},
    "model_loaded": {"en": "✓ Loaded `{model}`{adapter} — template `{template}`.",
                     "zh": "✓ 已加载 `{model}`{adapter} —— 模板 `{template}`。"},
    "model_unloaded": {"en": "Model unloaded; memory freed.", "zh": "模型已卸载，内存已释放。"},
    "load_first": {"en": "Load a model first.", "zh": "请先加载模型。"},
    "load_failed": {"en": "✗ Could not load: {error}", "zh": "✗ 加载失败：{error}"},
    "chat_input": {"en": "Message", "zh": "输入"},
    "chat_placeholder": {"en": "Type a message and press Enter", "zh": "输入消息后按回车"},
    "btn_submit": {"en": "Send", "zh": "发送"},
    "btn_clear": {"en": "Clear history", "zh": "清空历史"},
    "system_prompt": {"en": "System prompt", "zh": "系统提示词"},
    "chat_stats": {"en": "{tps} tokens/s · {n} tokens · first token after {ttft} s",
                   "zh": "{tps} token/秒 · {n} 个 token · 首 token 用时 {ttft} 秒"},
    # ---- export tab
    "btn_export": {"en": "Export", "zh": "开始导出"},
    "export_needs_adapter": {"en": "Pick the adapter to merge in the adapter box above.",
                             "zh": "请先在上方适配器框中选择要合并的适配器。"},
    "export_done": {"en": "✓ Merged model written to `{path}`.", "zh": "✓ 合并后的模型已保存到 `{path}`。"},
    "btn_use_in_chat": {"en": "Load the merged model in Chat", "zh": "在对话中加载合并后的模型"},
}


def t(key: str, lang: str = "en", **fmt) -> str:
    entry = L[key]
    text = entry.get(lang) or entry["en"]
    return text.format(**fmt) if fmt else text
