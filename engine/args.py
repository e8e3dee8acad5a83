"""THE argument schema. Every argument is defined here once.

CLI parsing, YAML validation (engine.config), the web UI widgets (webui/), the command preview
(engine.config.to_command), the TrainingArguments of a run (engine.train.workflow.training_arguments) and
the preprocessing cache key (engine.data.loader.cache_key) are all derived from ARGS. Adding a
hyperparameter is one `A(...)` line.

Field meanings:
  type     "str" | "int" | "float" | "bool" | "list" (comma-separated strings) | "dict" (a JSON/YAML mapping)
  group    panel/accordion it belongs to (GROUPS gives order and labels)
  stages   stages it applies to (None: all)       methods  finetuning types (None: all)
  commands which subcommands read it: train / infer (chat, webchat, api, eval) / export
  compat   accepted for LLaMA-Factory recipe compatibility; has no effect of its own (a run logs a note, from
           help_en, when a recipe gives one a non-default value)
  ui       shown as a widget in the web UI
  hf       the TrainingArguments (for dpo: trl DPOConfig) field the value is passed as
  read_by  for a train argument without `hf`: what reads it instead (READ_BY gives a group's default)
  preprocess  the value changes the tokenised data, so it is part of the preprocessing cache key
  choice_words  display names of the choices in English and Chinese (the stages' come from their records)
  suggest  values offered in the UI where others are accepted too (checked by the reader)
  secret   a credential (hub_token): left out of saved recipes, previews and logs; a started run gets it through
           its environment (SECRET_ENV), never on disk
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from .train.rewards import PRESETS
from .train.stages import STAGES

DEFAULT_MODEL = "models/SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class Arg:
    name: str
    type: str
    default: Any
    group: str
    help_en: str
    help_zh: str
    label_zh: str = ""
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    stages: tuple | None = None
    methods: tuple | None = None
    commands: tuple = ("train",)
    compat: bool = False
    ui: bool = True
    nullable: bool = False
    hf: str | None = None
    read_by: str = ""
    preprocess: bool = False
    choice_words: tuple = ()  # ((value, English, Chinese), ...): display names of the choices (the stages)
    suggest: tuple = ()       # values the UI offers in a list that also takes others (reward_funcs' presets)
    secret: bool = False      # a credential: never in a saved YAML, a preview or a log; a run gets it in its env

    @property
    def label_en(self) -> str:
        return self.name.replace("_", " ").capitalize()

    def label(self, lang: str = "en") -> str:
        return (self.label_zh or self.label_en) if lang == "zh" else self.label_en

    def help(self, lang: str = "en") -> str:
        return self.help_zh if lang == "zh" else self.help_en

    def applies(self, stage: str | None = None, method: str | None = None) -> bool:
        return (self.stages is None or stage is None or stage in self.stages) and (
            self.methods is None or method is None or method in self.methods)

    @property
    def reader(self) -> str:
        """Who uses a value that is not a TrainingArguments field ("" when nothing is declared)."""
        return self.read_by or READ_BY.get(self.group, "")


TRAIN, INFER, EXPORT = "train", "infer", "export"
ALL = (TRAIN, INFER, EXPORT)
TI = (TRAIN, INFER)
AUGMENT = "augment"  # `tuneboard augment`: strict, it takes only its own arguments and they belong to it alone
STRICT = (AUGMENT,)

GROUPS = {  # order = order of accordions in the UI
    "model": ("Model", "模型"),
    "method": ("Method", "训练方式"),
    "data": ("Data", "数据"),
    "train": ("Basic training", "基础训练参数"),
    "extra": ("Extra training", "其它训练参数"),
    "lora": ("LoRA", "LoRA 参数"),
    "freeze": ("Freeze", "部分参数微调"),
    "dpo": ("Preference (DPO / ORPO / SimPO / KTO)", "偏好优化（DPO / ORPO / SimPO / KTO）"),
    "grpo": ("Reinforcement learning (GRPO)", "强化学习（GRPO）"),
    "distributed": ("Devices / DeepSpeed / nodes", "设备 / DeepSpeed / 多机"),
    "generation": ("Generation", "生成参数"),
    "export": ("Export", "导出"),
    "augment": ("Augment a dataset", "数据增强"),
    "output": ("Output", "输出"),
}

# What reads the arguments of a group that are not TrainingArguments fields (an Arg's read_by says otherwise).
# "train", "extra", "dpo" and "output" have none: each of their arguments names its `hf` field or its reader.
READ_BY = {
    "model": "engine.models.loader (model, tokenizer, adapters) and the template",
    "data": "engine.data (datasets, tokenisation, the preprocessing cache)",
    "lora": "engine.train.methods (peft LoraConfig)",
    "freeze": "engine.train.methods (which parameters train)",
    "distributed": "engine.train.launcher (torchrun)",
}

SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
              "constant_with_warmup", "inverse_sqrt", "cosine_with_min_lr")


def A(name, type, default, group, en, zh, label_zh="", **kw) -> Arg:
    return Arg(name, type, default, group, en, zh, label_zh, **kw)


ARGS: list[Arg] = [
    # ---- model
    A("model_name_or_path", "str", DEFAULT_MODEL, "model",
      "Local model folder, or a hub id (downloaded with `tuneboard download`).",
      "本地模型目录或模型仓库 ID（可用 `tuneboard download` 下载）。", "模型路径", commands=ALL),
    A("adapter_name_or_path", "list", None, "model",
      "LoRA adapter folder(s) to load on top of the base model; comma-separated.",
      "加载到基座模型上的 LoRA 适配器目录，可用逗号分隔多个。", "适配器路径", commands=ALL, nullable=True),
    A("template", "str", None, "model",
      "Chat template; empty = the model's default from the registry, `auto` = the tokenizer's own.",
      "对话模板；留空则使用模型注册表中的默认模板，`auto` 使用分词器自带模板。", "对话模板",
      commands=ALL, nullable=True),
    A("trust_remote_code", "bool", False, "model",
      "Run custom code shipped with the model. Only for models you trust.",
      "执行模型自带的自定义代码，仅用于可信模型。", "信任远程代码", commands=ALL),
    A("hub", "str", "huggingface", "model", "Where `tuneboard download` fetches models from.",
      "`tuneboard download` 的下载来源。", "模型来源", choices=("huggingface", "modelscope"), commands=ALL),
    A("default_system", "str", None, "model", "System prompt that replaces the template's default.",
      "替换模板默认值的系统提示词。", "系统提示词", commands=TI, nullable=True, preprocess=True),
    # ---- QLoRA (LLaMA-Factory's names): the frozen base in 4 / 8 bits, LoRA on top in full precision
    A("quantization_bit", "int", None, "model",
      "QLoRA: load the frozen base model in 4 or 8 bits with bitsandbytes (LoRA only; training only: chat, eval "
      "and export load the base unquantized); empty = no quantization.",
      "QLoRA：用 bitsandbytes 以 4 或 8 比特加载冻结的基座模型（仅 LoRA；仅训练时生效，对话、评估和导出加载未量化的"
      "基座）；留空为不量化。", "量化比特", choices=(4, 8), nullable=True, methods=("lora",),
      read_by="engine.models.quantize (checked before loading; BitsAndBytesConfig for engine.models.loader)"),
    A("quantization_type", "str", "nf4", "model", "QLoRA 4-bit data type: nf4 (NormalFloat, usual) or fp4.",
      "QLoRA 4 比特数据类型：nf4（NormalFloat，常用）或 fp4。", "4 比特类型", choices=("nf4", "fp4"),
      methods=("lora",), read_by="engine.models.quantize (bnb_4bit_quant_type)"),
    A("double_quantization", "bool", True, "model",
      "QLoRA 4-bit: quantize the quantization constants too (about 0.4 bits per parameter less).",
      "QLoRA 4 比特：对量化常数再量化（每个参数约省 0.4 比特）。", "双重量化", methods=("lora",),
      read_by="engine.models.quantize (bnb_4bit_use_double_quant)"),
    A("quantization_method", "str", "bnb", "model", "Quantization library: only bnb (bitsandbytes) here.",
      "量化库：此处仅支持 bnb（bitsandbytes）。", "量化方法", choices=("bnb",), ui=False,
      read_by="engine.models.quantize (bitsandbytes is the only backend)"),
    # ---- method
    A("stage", "str", "sft", "method",
      "Training stage: pre-training, supervised fine-tuning, reward modelling (rm), DPO-style preference "
      "optimisation (dpo; pref_loss picks DPO / IPO / hinge / ORPO / SimPO) or KTO.",
      "训练阶段：预训练、指令监督微调、奖励模型（rm）、DPO 类偏好优化（dpo；pref_loss 选择 DPO / IPO / hinge / "
      "ORPO / SimPO）或 KTO。", "训练阶段", choices=tuple(STAGES),
      choice_words=tuple((s.name, *s.words) for s in STAGES.values()),
      read_by="workflow: picks the data format and the trainer (engine.train.stages)"),
    A("finetuning_type", "str", "lora", "method", "Which parameters are trained.",
      "训练哪些参数。", "微调方法", choices=("lora", "freeze", "full"), commands=ALL, read_by="engine.train.methods"),
    # ---- data
    A("dataset", "list", None, "data", "Dataset name(s) from dataset_info.json; comma-separated.",
      "dataset_info.json 中的数据集名称，可用逗号分隔多个。", "数据集", commands=TI + (AUGMENT,), nullable=True),
    A("eval_dataset", "list", None, "data", "Dataset(s) used for evaluation instead of a split of the training data.",
      "用于评估的数据集（替代从训练集划分）。", "评估数据集", commands=TI, nullable=True),
    A("dataset_dir", "str", "data", "data", "Folder holding dataset_info.json.",
      "存放 dataset_info.json 的目录。", "数据目录", commands=TI + (AUGMENT,)),
    A("cutoff_len", "int", 1024, "data", "Maximum tokens per example after tokenisation.",
      "分词后每条样本的最大长度。", "截断长度", min=4, max=1_000_000, commands=TI, preprocess=True),
    A("max_samples", "int", None, "data", "Use at most this many samples of each dataset.",
      "每个数据集最多使用的样本数。", "最大样本数", min=1, commands=TI + (AUGMENT,), nullable=True, preprocess=True),
    A("val_size", "float", 0.0, "data",
      "Held-out validation part of the training data: a fraction (<1) or a number of samples (>=1).",
      "验证集大小：小于 1 为比例，大于等于 1 为样本数。", "验证集比例", min=0.0, max=1e9, preprocess=True),
    A("train_on_prompt", "bool", False, "data", "Also compute the loss on prompt tokens.",
      "同时在提示词上计算损失。", "训练提示词", stages=("sft",), preprocess=True),
    A("mask_history", "bool", False, "data", "Train only on the last assistant turn of each conversation.",
      "只训练每段对话的最后一轮回答。", "仅训练最后一轮", stages=("sft",), preprocess=True),
    A("packing", "bool", False, "data",
      "Pack several examples into one sequence (no attention across examples). Faster on short data.",
      "将多条样本拼接为一个序列（样本间不互相注意），短样本时更快。", "序列打包", stages=tuple(n for n, s in STAGES.items() if s.packs), preprocess=True),
    A("padding_free", "bool", True, "data",
      "Each batch's examples in one row without padding, attention kept within each example (position ids restart "
      "per example): the same steps and loss as padded batches, no compute spent on padding.",
      "每个批次的样本拼成一行、不填充，注意力仅在各样本内部（位置编号按样本重新开始）：步数和损失与填充批次相同，"
      "不在填充上浪费计算。", "无填充批次", stages=tuple(n for n, s in STAGES.items() if s.unpads),
      read_by="engine.train.sft (the collator: one row per batch, position ids per example); engine.train.dpo "
              "(dpo / ipo / hinge: each padded batch of pairs computed as one row, engine.train.unpad)"),
    A("neat_packing", "bool", False, "data", "LLaMA-Factory name for packing without cross-attention; same as packing.",
      "LLaMA-Factory 中的无交叉注意力打包，等同 packing。", compat=True, ui=False, preprocess=True),
    A("identity_name", "str", "Tuney", "data", "Replaces {{name}} in the identity dataset.",
      "替换 identity 数据集中的 {{name}}。", "模型名字", commands=TI, preprocess=True),
    A("identity_author", "str", "TuneBoard", "data", "Replaces {{author}} in the identity dataset.",
      "替换 identity 数据集中的 {{author}}。", "开发者", commands=TI, preprocess=True),
    A("overwrite_cache", "bool", False, "data", "Ignore the preprocessing cache and tokenise again.",
      "忽略预处理缓存并重新分词。", "覆盖缓存", commands=TI),
    A("preprocessing_num_workers", "int", None, "data", "Processes used for tokenisation.",
      "分词使用的进程数。", "预处理进程数", min=1, max=256, nullable=True, commands=TI),
    # ---- basic training
    A("learning_rate", "float", 5e-5, "train", "Peak learning rate (AdamW).", "AdamW 的峰值学习率。",
      "学习率", min=0.0, max=10.0, hf="learning_rate"),
    A("num_train_epochs", "float", 3.0, "train", "Passes over the training data (ignored when max_steps > 0).",
      "训练轮数（max_steps > 0 时忽略）。", "训练轮数", min=0.0, max=1e6, hf="num_train_epochs"),
    A("max_steps", "int", -1, "train", "Total optimisation steps; -1 = derived from epochs.",
      "总训练步数；-1 表示由轮数推算。", "最大步数", min=-1, max=1e9, hf="max_steps"),
    A("per_device_train_batch_size", "int", 4, "train", "Examples per device per step.",
      "每个设备每步的样本数。", "批处理大小", min=1, max=4096, hf="per_device_train_batch_size"),
    A("gradient_accumulation_steps", "int", 1, "train", "Steps whose gradients are summed before an update.",
      "梯度累积步数。", "梯度累积", min=1, max=4096, hf="gradient_accumulation_steps"),
    A("lr_scheduler_type", "str", "cosine", "train", "Learning-rate schedule.", "学习率调度器。",
      "学习率调节器", choices=SCHEDULERS, hf="lr_scheduler_type"),
    A("warmup_ratio", "float", 0.0, "train", "Fraction of steps for linear warm-up.", "学习率预热占比。",
      "预热比例", min=0.0, max=1.0,
      read_by="workflow: passed as warmup_steps (a fraction below 1) when warmup_steps is 0"),
    A("warmup_steps", "int", 0, "train", "Warm-up steps (overrides warmup_ratio when > 0).",
      "预热步数（大于 0 时覆盖预热比例）。", "预热步数", min=0, max=1e9, hf="warmup_steps"),
    A("max_grad_norm", "float", 1.0, "train", "Gradient clipping norm; 0 disables clipping.",
      "梯度裁剪阈值，0 表示不裁剪。", "最大梯度范数", min=0.0, max=1e6, hf="max_grad_norm"),
    A("precision", "str", "auto", "train",
      "Compute type. auto: training takes what the hardware runs natively (bf16 on GPUs that support it, else fp16; "
      "bf16 autocast on CPUs with AVX512-BF16 / AMX; fp32 on other CPUs), chat keeps fp32 on CPU. A type the device "
      "cannot run falls back to fp32.",
      "计算类型。auto：训练使用硬件原生支持的类型（支持 bf16 的 GPU 用 bf16，否则 fp16；有 AVX512-BF16 / AMX 的 CPU 用 "
      "bf16 自动混合精度；其它 CPU 用 fp32），CPU 上对话保持 fp32。设备不支持的类型回退 fp32。", "计算类型",
      choices=("auto", "fp32", "bf16", "fp16"), commands=ALL,
      read_by="engine.precision (what auto picks; the Trainer's bf16 / fp16 and the load dtype follow it)"),
    A("bf16", "bool", False, "train", "LLaMA-Factory's name for precision=bf16 (bfloat16 mixed precision).",
      "LLaMA-Factory 中的 bf16，等同 precision=bf16（bfloat16 混合精度）。", "bf16", hf="bf16"),
    A("fp16", "bool", False, "train", "LLaMA-Factory's name for precision=fp16 (float16 mixed precision, CUDA only).",
      "LLaMA-Factory 中的 fp16，等同 precision=fp16（float16 混合精度，仅 CUDA）。", "fp16", hf="fp16"),
    # ---- extra training
    A("weight_decay", "float", 0.0, "extra", "AdamW weight decay.", "权重衰减。", "权重衰减", min=0.0, max=10.0,
      hf="weight_decay"),
    A("optim", "str", "adamw_torch_fused", "extra",
      "Optimizer. adamw_torch_fused (the default) updates in one pass per tensor: on this project's CPU 4x faster "
      "than adamw_torch's separate passes over 135M weights (0.05 against 0.22 s a step).",
      "优化器。默认 adamw_torch_fused 每个张量一次遍历完成更新：在本项目的 CPU 上对 1.35 亿参数比 adamw_torch 的多次遍历快 4 倍"
      "（每步 0.05 秒对 0.22 秒）。", "优化器",
      choices=("adamw_torch", "adamw_torch_fused", "sgd", "adafactor"), hf="optim"),
    A("seed", "int", 42, "extra", "Random seed (data split, shuffling, initialisation).",
      "随机种子（数据划分、打乱、初始化）。", "随机种子", min=0, max=2**32 - 1, commands=TI, hf="seed", preprocess=True),
    A("gradient_checkpointing", "bool", False, "extra",
      "Recompute activations to save memory (slower). Left unset, it turns on by itself only when the memory "
      "estimate says the run would not fit without it.",
      "重计算激活以节省显存（更慢）。未设置时，仅当内存预估显示不开启就放不下时自动开启。", "梯度检查点",
      read_by="engine.train.methods (non-reentrant activation checkpointing on the model); workflow turns it on "
              "when the estimate says the run would not fit"),
    A("logging_steps", "int", 5, "extra", "Write a log line every N steps.", "每 N 步记录一次日志。",
      "日志间隔", min=1, max=1e6, hf="logging_steps"),
    A("save_steps", "int", 100, "extra", "Save a checkpoint every N steps.", "每 N 步保存一次检查点。",
      "保存间隔", min=1, max=1e9, hf="save_steps"),
    A("save_total_limit", "int", None, "extra", "Keep at most this many checkpoints.",
      "最多保留的检查点数。", "最多检查点数", min=1, max=1e6, nullable=True, hf="save_total_limit"),
    A("save_only_model", "bool", False, "extra", "Checkpoints without optimizer state (cannot resume).",
      "检查点不含优化器状态（无法续训）。", "仅保存模型", hf="save_only_model"),
    A("eval_strategy", "str", None, "extra", "When to evaluate: no, steps or epoch (default: steps when a validation set exists).",
      "评估时机：no、steps 或 epoch（有验证集时默认 steps）。", "评估策略",
      choices=("no", "steps", "epoch"), nullable=True, hf="eval_strategy"),
    A("eval_steps", "int", None, "extra",
      "Evaluate every N steps (default: every tenth of the run, less often when the eval set is large next to the "
      "training, so that evaluating takes at most ~15 % of it; the last evaluation comes after training).",
      "每 N 步评估一次（默认每训练十分之一评估一次；验证集相对训练量较大时减少次数，使评估最多占训练计算的约 15%；"
      "最后一次评估在训练结束后进行）。", "评估间隔", min=1, max=1e9, nullable=True, hf="eval_steps"),
    A("per_device_eval_batch_size", "int", 4, "extra", "Examples per device per evaluation step.",
      "评估时每个设备的样本数。", "评估批大小", min=1, max=4096, commands=TI, hf="per_device_eval_batch_size"),
    A("dataloader_num_workers", "int", 0, "extra", "Data loader worker processes.", "数据加载进程数。",
      "数据加载进程", min=0, max=256, hf="dataloader_num_workers"),
    A("report_to", "str", "none", "extra",
      "Experiment trackers the Trainer reports to: none, tensorboard (event files in output_dir/runs), wandb, "
      "mlflow, all...; comma-separated.", "训练器上报的实验记录工具：none、tensorboard（事件文件在 output_dir/runs）、"
      "wandb、mlflow、all 等，可用逗号分隔。", "实验记录", hf="report_to"),
    A("plot_loss", "bool", True, "extra", "Save training/eval loss plots as PNG.", "保存训练/评估损失曲线图。",
      "绘制损失曲线", read_by="workflow: plots written after training"),
    A("early_stopping_patience", "int", None, "extra",
      "Stop when eval loss has not improved for this many evaluations (needs an eval set).",
      "评估损失连续这么多次没有改善时提前停止（需要评估集）。", "早停耐心", min=1, max=1e6, nullable=True,
      read_by="engine.train.best (EarlyStoppingCallback)"),
    A("load_best_model_at_end", "bool", False, "extra",
      "Keep the checkpoint with the lowest eval loss as the result (a checkpoint is saved at each evaluation).",
      "以评估损失最低的检查点作为最终结果（每次评估时保存检查点）。", "保留最佳检查点",
      read_by="engine.train.best (with metric_for_best_model and a save per evaluation)"),
    A("neftune_noise_alpha", "float", None, "extra",
      "NEFTune: uniform noise of this scale on the input embeddings while training (5 is typical); empty = off.",
      "NEFTune：训练时在输入嵌入上加入该强度的均匀噪声（常用 5）；留空为关闭。", "NEFTune 噪声强度",
      min=0.0, max=1e4, nullable=True, hf="neftune_noise_alpha"),
    A("extra_args", "dict", None, "extra",
      "More Trainer arguments as a JSON/YAML mapping, e.g. {\"adam_beta2\": 0.99, \"max_grad_norm\": 0.5}: any field of "
      "transformers TrainingArguments (DPO: trl DPOConfig) the form does not show. Unknown names are refused.",
      "更多训练器参数，JSON/YAML 映射，例如 {\"adam_beta2\": 0.99, \"max_grad_norm\": 0.5}：表单未列出的 "
      "TrainingArguments（DPO 为 trl DPOConfig）字段均可。未知名称会被拒绝。", "额外训练参数", nullable=True,
      read_by="workflow: checked against the stage's TrainingArguments / DPOConfig and passed to it"),
    # ---- LoRA
    A("lora_rank", "int", 8, "lora", "LoRA rank r.", "LoRA 秩 r。", "LoRA 秩", min=1, max=4096,
      methods=("lora",)),
    A("lora_alpha", "int", None, "lora", "LoRA scale alpha (default: 2 x rank).", "LoRA 缩放系数（默认秩的 2 倍）。",
      "LoRA 缩放系数", min=1, max=65536, methods=("lora",), nullable=True),
    A("lora_dropout", "float", 0.0, "lora", "Dropout on the LoRA path.", "LoRA 路径上的 dropout。",
      "LoRA 随机丢弃率", min=0.0, max=1.0, methods=("lora",)),
    A("lora_target", "list", ["all"], "lora", "Modules that get LoRA: `all` (every linear layer but the head) or names.",
      "应用 LoRA 的模块：`all`（除输出层外所有线性层）或模块名。", "LoRA 作用模块", methods=("lora",)),
    A("use_rslora", "bool", False, "lora", "Rank-stabilised LoRA scaling.", "使用秩稳定 LoRA 缩放。",
      "rsLoRA 秩稳定缩放", methods=("lora",)),
    A("use_dora", "bool", False, "lora", "Weight-decomposed LoRA (DoRA).", "使用权重分解 LoRA（DoRA）。",
      "DoRA 权重分解", methods=("lora",)),
    A("loraplus_lr_ratio", "float", None, "lora",
      "LoRA+: the B matrices learn this many times faster than learning_rate (16 is typical); empty = plain LoRA.",
      "LoRA+：B 矩阵的学习率为 learning_rate 的这么多倍（常用 16）；留空为普通 LoRA。", "LoRA+ 学习率比例",
      min=1e-3, max=1e4, methods=("lora",), nullable=True,
      read_by="engine.train.methods (optimizer parameter groups, peft create_loraplus_optimizer)"),
    A("pissa_init", "bool", False, "lora",
      "PiSSA: start the adapter from the principal singular vectors of each weight (converges faster); the saved "
      "adapter is converted to plain LoRA, so it loads on the original base.",
      "PiSSA：用各权重的主奇异向量初始化适配器（收敛更快）；保存时转换为普通 LoRA，可直接加载到原始基座。",
      "PiSSA 初始化", methods=("lora",)),
    A("pissa_iter", "int", 16, "lora", "PiSSA: fast-SVD iterations; -1 = exact SVD (slow on big layers).",
      "PiSSA 快速 SVD 的迭代次数；-1 为精确 SVD（大层较慢）。", "PiSSA 迭代次数", min=-1, max=10000,
      methods=("lora",)),
    # ---- freeze
    A("freeze_trainable_layers", "int", 2, "freeze",
      "Trainable layers: positive = the last N, negative = the first N.",
      "可训练层数：正数为最后 N 层，负数为最前 N 层。", "可训练层数", min=-10000, max=10000,
      methods=("freeze",)),
    A("freeze_trainable_modules", "list", ["all"], "freeze", "Modules trained inside those layers (`all` or names).",
      "这些层中可训练的模块（`all` 或模块名）。", "可训练模块", methods=("freeze",)),
    # ---- preference (DPO family, KTO)
    A("pref_beta", "float", 0.1, "dpo",
      "Beta: how far the policy may move from the reference (DPO, IPO, hinge, KTO); the reward scale for SimPO; "
      "the weight of the odds-ratio term for ORPO.",
      "Beta：策略偏离参考模型的程度（DPO、IPO、hinge、KTO）；SimPO 的奖励缩放；ORPO 中比值比项的权重。",
      "Beta 参数", min=0.0, max=100.0, stages=("dpo", "kto"),
      read_by="engine.train.dpo / kto trainer_fields: the beta of the pref_loss's trl config"),
    A("pref_loss", "str", "sigmoid", "dpo",
      "Preference loss: sigmoid (DPO), ipo, hinge (all with a reference model), or orpo / simpo (no reference "
      "model: less memory and compute).",
      "偏好损失：sigmoid（DPO）、ipo、hinge（需要参考模型），或 orpo / simpo（无需参考模型，更省内存和计算）。",
      "损失类型", choices=("sigmoid", "ipo", "hinge", "orpo", "simpo"), stages=("dpo",),
      read_by="engine.train.dpo: picks the trl trainer and its loss_type"),
    A("pref_ftx", "float", 0.0, "dpo",
      "Weight of an extra SFT loss on the chosen answer (ORPO always has one of weight 1).",
      "附加在 chosen 回答上的 SFT 损失权重（ORPO 自带权重为 1 的 SFT 损失）。", "SFT 损失权重",
      min=0.0, max=100.0, stages=("dpo",),
      read_by="engine.train.dpo: DPO loss_weights / CPO cpo_alpha (ORPO has its own)"),
    A("simpo_gamma", "float", 0.5, "dpo", "SimPO target reward margin gamma (pref_loss=simpo).",
      "SimPO 的目标奖励间隔 gamma（pref_loss=simpo 时）。", "SimPO 奖励间隔 gamma", min=0.0, max=100.0, stages=("dpo",),
      read_by="engine.train.dpo: CPOConfig.simpo_gamma when pref_loss=simpo"),
    A("kto_chosen_weight", "float", 1.0, "dpo",
      "KTO weight of the desirable (kto_tag true) answers' loss; raise it when they are the minority.",
      "KTO 中期望回答（kto_tag 为 true）损失的权重；期望回答较少时调高。", "期望样本权重",
      min=0.0, max=100.0, stages=("kto",), hf="desirable_weight"),
    A("kto_rejected_weight", "float", 1.0, "dpo",
      "KTO weight of the undesirable (kto_tag false) answers' loss.",
      "KTO 中非期望回答（kto_tag 为 false）损失的权重。", "非期望样本权重", min=0.0, max=100.0, stages=("kto",),
      hf="undesirable_weight"),
    # ---- GRPO (reinforcement learning with rewards a program checks)
    A("num_generations", "int", 4, "grpo",
      "Completions sampled per prompt; each is scored against its group's mean. The batch counts completions: "
      "per_device_train_batch_size x gradient_accumulation_steps must be a multiple of it.",
      "每个提示采样的回答数；每个回答的得分与同组均值比较。批大小按回答计：per_device_train_batch_size × "
      "gradient_accumulation_steps 须为其整数倍。", "每题采样数", min=2, max=256, stages=("grpo",),
      hf="num_generations"),
    A("max_completion_length", "int", 256, "grpo", "Most tokens sampled per completion (cutoff_len bounds the prompt).",
      "每个回答最多采样的 token 数（cutoff_len 限制提示长度）。", "最大回答长度", min=1, max=1_000_000,
      stages=("grpo",), hf="max_completion_length"),
    A("grpo_temperature", "float", 1.0, "grpo",
      "Sampling temperature of the completions: higher gives more varied answers to compare.",
      "采样回答时的温度：越高回答越多样，可比较的差异越多。", "采样温度", min=0.01, max=10.0, stages=("grpo",),
      hf="temperature"),
    A("grpo_beta", "float", 0.04, "grpo",
      "Weight of the KL to the starting model; 0 drops the reference model (less memory and compute).",
      "与初始模型之间 KL 的权重；0 表示不使用参考模型（更省内存和计算）。", "KL 系数 beta", min=0.0, max=100.0,
      stages=("grpo",), hf="beta"),
    A("grpo_epsilon", "float", 0.2, "grpo", "Clipping range of the policy ratio (as PPO).",
      "策略比率的裁剪范围（同 PPO）。", "裁剪范围 epsilon", min=0.0, max=1.0, stages=("grpo",), hf="epsilon"),
    A("grpo_loss_type", "str", "dapo", "grpo",
      "How token losses are averaged: dapo (over the batch's tokens), grpo (per completion), dr_grpo (by a "
      "constant), bnpo (over the local batch's tokens).",
      "token 损失的平均方式：dapo（按整批 token）、grpo（按每个回答）、dr_grpo（按常数）、bnpo（按本地批 token）。",
      "损失类型", choices=("dapo", "grpo", "dr_grpo", "bnpo"), stages=("grpo",), hf="loss_type"),
    A("reward_funcs", "list", ["answer_last_number"], "grpo",
      "Rewards, summed with reward_weights: presets (" + "; ".join(f"{k}: {v.words[0]}" for k, v in PRESETS.items())
      + ") or your own function as path/to/file.py:function.",
      "奖励函数，按 reward_weights 加权求和：预设（" + "；".join(f"{k}：{v.words[1]}" for k, v in PRESETS.items())
      + "）或自己的函数 path/to/file.py:function。", "奖励函数", stages=("grpo",), suggest=tuple(PRESETS),
      read_by="engine.train.rewards (the GRPOTrainer's reward functions)"),
    A("reward_weights", "list", None, "grpo", "One weight per reward function, in the same order; empty = all 1.",
      "每个奖励函数一个权重，顺序相同；留空为全部 1。", "奖励权重", stages=("grpo",), nullable=True,
      read_by="engine.train.grpo trainer_fields: GRPOConfig.reward_weights"),
    A("reward_format_regex", "str", r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", "grpo",
      "The format preset's regular expression (searched in each completion; . matches newlines).",
      "format 预设使用的正则表达式（在每个回答中搜索；. 可匹配换行）。", "格式正则", stages=("grpo",),
      read_by="engine.train.rewards (the format preset)"),
    A("reward_length_min", "int", 1, "grpo", "The length preset's band: fewest tokens that score 1.",
      "length 预设的区间：得 1 分的最少 token 数。", "长度下限", min=0, max=1_000_000, stages=("grpo",),
      read_by="engine.train.rewards (the length preset)"),
    A("reward_length_max", "int", 256, "grpo", "The length preset's band: most tokens that score 1.",
      "length 预设的区间：得 1 分的最多 token 数。", "长度上限", min=0, max=1_000_000, stages=("grpo",),
      read_by="engine.train.rewards (the length preset)"),
    A("use_vllm", "bool", False, "grpo",
      "Sample with vLLM on the GPU (colocated with training); needs vLLM and CUDA, refused otherwise.",
      "在 GPU 上用 vLLM 采样（与训练共用进程）；需要 vLLM 和 CUDA，否则会被拒绝。", "使用 vLLM", stages=("grpo",),
      hf="use_vllm"),
    # ---- distributed
    A("devices", "list", None, "distributed",
      "Devices this run trains on: cpu, or GPU indices (0,1 as nvidia-smi numbers them); empty = every device the "
      "process sees. Sets CUDA_VISIBLE_DEVICES for this run's processes alone.",
      "本次运行使用的设备：cpu，或 GPU 序号（0,1，与 nvidia-smi 编号一致）；留空为进程可见的全部设备。仅对本次运行的进程设置 "
      "CUDA_VISIBLE_DEVICES。", "设备", nullable=True,
      read_by="engine.devices (the run's CUDA_VISIBLE_DEVICES, set by engine.runs and engine.train.launcher)"),
    A("cpu_threads", "int", None, "distributed", "CPU threads of this run (OMP_NUM_THREADS); empty = every core.",
      "本次运行的 CPU 线程数（OMP_NUM_THREADS）；留空为全部核心。", "CPU 线程数", min=1, max=4096, nullable=True,
      read_by="engine.devices (the run's OMP_NUM_THREADS / torch threads)"),
    A("nproc_per_node", "int", 1, "distributed", "Processes (devices) per node; >1 launches torchrun.",
      "每个节点的进程（设备）数；大于 1 时使用 torchrun 启动。", "每节点进程数", min=1, max=1024),
    A("nnodes", "int", 1, "distributed", "Number of nodes.", "节点数量。", "节点数", min=1, max=10000),
    A("node_rank", "int", 0, "distributed", "Rank of this node.", "当前节点序号。", "节点序号", min=0, max=10000),
    A("master_addr", "str", "127.0.0.1", "distributed", "Address of node 0.", "主节点地址。", "主节点地址"),
    A("master_port", "int", 29500, "distributed", "Port of node 0.", "主节点端口。", "主节点端口", min=1, max=65535),
    A("deepspeed", "str", None, "distributed", "DeepSpeed JSON config (see examples/deepspeed/).",
      "DeepSpeed 配置文件（见 examples/deepspeed/）。", "DeepSpeed 配置", nullable=True, hf="deepspeed"),
    A("fsdp", "str", None, "distributed",
      "FSDP2 (PyTorch fully_shard, through accelerate): shard the weights, gradients and optimizer states over the "
      "processes. full_shard: everything sharded, gathered per layer (least memory); shard_grad_op: weights stay "
      "gathered between forward and backward (faster, more memory); offload: full_shard with the shards kept in host "
      "memory. Empty = plain data parallel (or DeepSpeed).",
      "FSDP2（PyTorch fully_shard，经 accelerate）：把权重、梯度和优化器状态切分到各进程。full_shard：全部切分，逐层"
      "收集（最省内存）；shard_grad_op：前向到反向之间保留完整权重（更快、更占内存）；offload：full_shard 且分片放在"
      "主机内存。留空为普通数据并行（或 DeepSpeed）。", "FSDP 模式",
      choices=("full_shard", "shard_grad_op", "offload"), nullable=True, hf="fsdp"),
    # ---- generation (chat / eval / api)
    A("max_new_tokens", "int", 512, "generation", "Maximum tokens generated per answer.",
      "每次回答最多生成的 token 数。", "最大生成长度", min=1, max=1_000_000, commands=(INFER, AUGMENT)),
    A("do_sample", "bool", True, "generation", "Sample (otherwise greedy decoding).", "采样解码（否则贪心）。",
      "采样", commands=(INFER,)),
    A("temperature", "float", 0.95, "generation", "Sampling temperature.", "采样温度。", "温度",
      min=0.0, max=10.0, commands=(INFER, AUGMENT)),
    A("top_p", "float", 0.7, "generation", "Nucleus sampling probability mass.", "核采样概率阈值。",
      "Top-p 核采样阈值", min=0.0, max=1.0, commands=(INFER,)),
    A("top_k", "int", 50, "generation", "Sample among the k most likely tokens.", "仅从概率最高的 k 个 token 中采样。",
      "Top-k 候选数", min=0, max=1_000_000, commands=(INFER,)),
    A("repetition_penalty", "float", 1.0, "generation", "Penalty for repeating tokens (1 = none).",
      "重复惩罚（1 表示不惩罚）。", "重复惩罚", min=0.01, max=10.0, commands=(INFER,)),
    # ---- export
    A("export_dir", "str", None, "export", "Folder the merged model is written to.", "合并后模型的保存目录。",
      "导出目录", commands=(EXPORT,), nullable=True),
    A("export_size", "int", 5, "export", "Largest safetensors shard, in GB.", "单个 safetensors 分片的最大大小（GB）。",
      "分片大小 (GB)", min=1, max=1000, commands=(EXPORT,)),
    A("export_dtype", "str", "auto", "export", "dtype of the exported weights.", "导出权重的数据类型。",
      "导出数据类型", choices=("auto", "float32", "float16", "bfloat16"), commands=(EXPORT,)),
    # ---- augment (`tuneboard augment`, the web UI's Data tab): N rewrites of each record by an OpenAI-style endpoint
    A("base_url", "str", "http://127.0.0.1:8000/v1", "augment",
      "OpenAI-compatible endpoint that writes the new records (`tuneboard api` serves one at this default).",
      "生成新样本的 OpenAI 兼容接口地址（`tuneboard api` 默认即此地址）。", "接口地址", commands=(AUGMENT,),
      read_by="engine.data.augment"),
    A("model", "str", None, "augment", "Model name the endpoint serves (its /v1/models lists them).",
      "接口提供的模型名称（见其 /v1/models）。", "模型名称", nullable=True, commands=(AUGMENT,),
      read_by="engine.data.augment"),
    A("n", "int", 2, "augment", "New records asked for per record of the dataset.", "每条样本生成的新样本数。",
      "每条生成数", min=1, max=1000, commands=(AUGMENT,), read_by="engine.data.augment"),
    A("prompt", "str", None, "augment",
      "File with the prompt template; {record} stands for the record as JSON. Empty = the built-in template.",
      "提示词模板文件，{record} 代表 JSON 格式的样本；留空使用内置模板。", "提示词模板文件", nullable=True,
      commands=(AUGMENT,), ui=False, read_by="engine.data.augment (the web UI edits the template text itself)"),
    A("output", "str", None, "augment",
      "Name of the new dataset (default <dataset>_aug); an existing dataset is never replaced.",
      "新数据集名称（默认 <数据集>_aug）；已有数据集不会被覆盖。", "新数据集名称", nullable=True, commands=(AUGMENT,),
      read_by="engine.data.augment"),
    A("workers", "int", 4, "augment", "Requests in flight at once.", "同时进行的请求数。", "并发请求数",
      min=1, max=256, commands=(AUGMENT,), read_by="engine.data.augment"),
    A("retries", "int", 3, "augment", "Retries of a request that failed (timeout, 429, 5xx) before it counts as failed.",
      "请求失败（超时、429、5xx）后的重试次数，之后计为失败。", "重试次数", min=0, max=20, commands=(AUGMENT,),
      read_by="engine.data.augment"),
    A("request_timeout", "float", 120.0, "augment", "Seconds one request may take.", "单个请求的超时秒数。",
      "请求超时", min=1.0, max=3600.0, commands=(AUGMENT,), read_by="engine.data.augment"),
    # the names are engine.export.FORMATS' (tests/test_export.py checks they agree)
    A("export_format", "str", "safetensors", "export",
      "What to write: safetensors (a transformers model folder) or gguf (one file for llama.cpp / Ollama / LM Studio, "
      "with an Ollama Modelfile beside it).",
      "导出格式：safetensors（transformers 模型目录）或 gguf（llama.cpp / Ollama / LM Studio 使用的单个文件，"
      "附带 Ollama Modelfile）。", "导出格式", choices=("safetensors", "gguf"), commands=(EXPORT,)),
    A("gguf_type", "str", "f16", "export",
      "GGUF weight type: f16 / bf16 / f32 (exact), q8_0 (8-bit, about half of f16); the k-quants q4_k_m / q5_k_m / "
      "q6_k need llama.cpp's quantizer (llama-quantize).",
      "GGUF 权重类型：f16 / bf16 / f32（无损），q8_0（8 比特，约为 f16 的一半）；k-quant 类型 q4_k_m / q5_k_m / q6_k "
      "需要 llama.cpp 的量化工具（llama-quantize）。", "GGUF 类型",
      choices=("f16", "bf16", "f32", "q8_0", "q4_k_m", "q5_k_m", "q6_k"), commands=(EXPORT,),
      read_by="engine.export_gguf (llama.cpp's converter, then llama-quantize for the k-quants)"),
    A("export_hub_model_id", "str", None, "export",
      "Upload the export to this hub repository (user/name) when set; created if missing.",
      "设置后将导出结果上传到该模型仓库（用户名/仓库名），不存在时自动创建。", "上传仓库 ID", nullable=True,
      commands=(EXPORT,), read_by="engine.hub_upload"),
    A("export_hub", "str", "huggingface", "export", "The hub export_hub_model_id is on.",
      "上传到的模型平台。", "上传平台", choices=("huggingface", "modelscope"), commands=(EXPORT,),
      read_by="engine.hub_upload"),
    A("export_hub_private", "bool", True, "export", "Create the hub repository as private.",
      "以私有仓库创建。", "私有仓库", commands=(EXPORT,), read_by="engine.hub_upload"),
    A("hub_token", "str", None, "export",
      "Access token for the upload; empty = HF_TOKEN / MODELSCOPE_API_TOKEN or your saved login. Never saved.",
      "上传使用的访问令牌；留空则使用 HF_TOKEN / MODELSCOPE_API_TOKEN 或已保存的登录。不会被保存。", "访问令牌",
      nullable=True, commands=(EXPORT,), secret=True, read_by="engine.hub_upload"),
    # ---- output
    A("output_dir", "str", None, "output", "Run folder (default: saves/<model>/<method>/train_<time>).",
      "运行目录（默认 saves/<模型>/<方法>/train_<时间>）。", "输出目录", nullable=True, commands=TI, hf="output_dir"),
    A("overwrite_output_dir", "bool", False, "output",
      "Allow writing into a folder that holds another run (train) or another export (export).",
      "允许写入已有其它运行（训练）或其它导出结果（导出）的目录。", "覆盖输出目录", commands=(TRAIN, EXPORT),
      read_by="workflow: refuses or clears an output_dir holding a run; engine.export: export_dir"),
    A("resume_from_checkpoint", "str", None, "output",
      "Checkpoint to resume from; `true`/`last` = the newest complete one in output_dir.",
      "续训的检查点；`true`/`last` 表示输出目录中最新的完整检查点。", "续训检查点", nullable=True,
      read_by="workflow: resolved to a checkpoint for trainer.train()"),
    # ---- accepted for LLaMA-Factory recipes; no effect of their own
    A("do_train", "bool", True, "method",
      "LLaMA-Factory's do_train: `tuneboard train` always trains (false is refused; predictions: `tuneboard eval`).",
      "LLaMA-Factory 的 do_train：`tuneboard train` 总是训练（false 会被拒绝；预测请用 `tuneboard eval`）。",
      compat=True, ui=False),
    A("do_eval", "bool", False, "method",
      "LLaMA-Factory's do_eval: ignored, evaluation runs whenever val_size or eval_dataset is set.",
      "LLaMA-Factory 的 do_eval：此处忽略，设置 val_size 或 eval_dataset 时即会评估。",
      compat=True, ui=False),
    A("do_predict", "bool", False, "method",
      "LLaMA-Factory's do_predict: predictions are made by `tuneboard eval` (a train run refuses it).",
      "LLaMA-Factory 的 do_predict：预测由 `tuneboard eval` 完成（训练时拒绝）。",
      compat=True, ui=False, commands=TI),
    A("predict_with_generate", "bool", False, "method",
      "LLaMA-Factory's predict_with_generate: ignored, `tuneboard eval` always generates.",
      "LLaMA-Factory 的 predict_with_generate：此处忽略，`tuneboard eval` 总是生成。", compat=True, ui=False, commands=TI),

    A("ddp_timeout", "int", 1800, "distributed", "Seconds processes wait for each other (multi-GPU / multi-node).",
      "多卡/多机时进程间等待的超时秒数。", "DDP 超时", min=1, max=2**31 - 1, ui=False, hf="ddp_timeout"),
    A("flash_attn", "str", "auto", "model",
      "Attention implementation: auto / sdpa (PyTorch SDPA), eager, or fa2 (FlashAttention-2, CUDA only).",
      "注意力实现：auto / sdpa（PyTorch SDPA）、eager 或 fa2（FlashAttention-2，仅 CUDA）。", "注意力实现",
      choices=("auto", "sdpa", "eager", "disabled", "fa2"), commands=ALL),
    A("rope_scaling", "str", None, "model",
      "RoPE scaling for contexts longer than the model was trained on: linear, dynamic (NTK), yarn or llama3.",
      "RoPE 缩放，用于超过模型训练长度的上下文：linear、dynamic（NTK）、yarn 或 llama3。", "RoPE 缩放",
      choices=("linear", "dynamic", "yarn", "llama3"), nullable=True, commands=ALL),
    A("rope_factor", "float", None, "model",
      "RoPE scaling factor; empty = cutoff_len / the model's max_position_embeddings, rounded up.",
      "RoPE 缩放倍数；留空为 cutoff_len / 模型 max_position_embeddings，向上取整。", "RoPE 缩放倍数",
      min=1.0, max=1024.0, nullable=True, commands=ALL),
    A("infer_backend", "str", "huggingface", "model",
      "Inference backend: ignored, chat / eval / api always use huggingface transformers.",
      "推理后端（此处仅 huggingface）。", compat=True, ui=False, commands=(INFER,)),
    A("mix_strategy", "str", "concat", "data",
      "How datasets are mixed: ignored, datasets are always concatenated (then shuffled by the Trainer).", "数据集混合方式（concat）。",
      compat=True, ui=False, commands=TI),
    A("enable_thinking", "bool", True, "model",
      "Thinking mode of reasoning templates (qwen3, deepseekr1); false = as qwen3_nothink: the prompt ends with "
      "an empty <think> block and the data's reasoning is dropped. Other templates ignore it.",
      "推理模板（qwen3、deepseekr1）的思考模式；false 等同 qwen3_nothink：提示以空的 <think> 块结尾，数据中的推理过程被去掉。"
      "其它模板忽略此项。", "思考模式", ui=False, commands=ALL),
    A("tokenized_path", "str", None, "data",
      "LLaMA-Factory's saved tokenisation folder: ignored, the preprocessing cache here is automatic.",
      "LLaMA-Factory 的分词结果目录：此处忽略，预处理缓存是自动的。", compat=True, ui=False, nullable=True, commands=TI),
    A("ray_num_workers", "int", 1, "distributed",
      "LLaMA-Factory's Ray workers: ignored, Ray is not used; nproc_per_node=N trains on N devices with torchrun.",
      "LLaMA-Factory 的 Ray 进程数：此处忽略，不使用 Ray；nproc_per_node=N 用 torchrun 在 N 个设备上训练。",
      compat=True, ui=False),
    # LLaMA-Factory's merge recipes (examples/merge_lora/*.yaml): accepted, each noted in the export's log
    A("export_device", "str", "cpu", "export", "LLaMA-Factory's export_device: ignored, the merge runs on the CPU.",
      "LLaMA-Factory 的 export_device：此处忽略，合并在 CPU 上进行。", compat=True, ui=False, commands=(EXPORT,)),
    A("export_legacy_format", "bool", False, "export",
      "LLaMA-Factory's export_legacy_format: ignored, weights are always written as safetensors (or GGUF).",
      "LLaMA-Factory 的 export_legacy_format：此处忽略，权重总是保存为 safetensors（或 GGUF）。", compat=True,
      ui=False, commands=(EXPORT,)),
    *[A(k, t, None, "export", f"LLaMA-Factory's {k}: ignored, GPTQ export is not supported; for a smaller model "
        "use export_format=gguf with gguf_type=q8_0 (or a k-quant).",
        f"LLaMA-Factory 的 {k}：此处忽略，不支持 GPTQ 导出；需要更小的模型请用 export_format=gguf 与 gguf_type=q8_0"
        "（或 k-quant 类型）。", compat=True, ui=False, nullable=True, commands=(EXPORT,))
      for k, t in (("export_quantization_bit", "int"), ("export_quantization_dataset", "str"),
                   ("export_quantization_nsamples", "int"), ("export_quantization_maxlen", "int"))],
    *[A(k, "str", None, "model", f"LLaMA-Factory's {k}: ignored, multimodal training is not supported.",
        f"LLaMA-Factory 的 {k}：此处忽略，不支持多模态训练。", compat=True, ui=False, nullable=True, commands=ALL)
      for k in ("image_max_pixels", "image_min_pixels", "video_max_pixels", "video_min_pixels", "video_fps",
                "video_maxlen", "audio_sampling_rate", "freeze_vision_tower", "freeze_multi_modal_projector")],
]

BY_NAME: dict[str, Arg] = {a.name: a for a in ARGS}
SECRET_ENV = "TUNEBOARD_SECRET_"  # + NAME upper-cased: how a started run receives a secret argument
assert len(BY_NAME) == len(ARGS), "duplicate argument name"


def grouped(args: list[Arg]) -> list[tuple[str, list[Arg]]]:
    """(group, args) in GROUPS order, schema order within a group (the web UI's accordions, `--help`'s sections);
    a group missing from GROUPS comes last under its own name."""
    order = list(GROUPS) + sorted({a.group for a in args} - set(GROUPS))
    return [(g, [a for a in args if a.group == g]) for g in order if any(a.group == g for a in args)]


def group_label(group: str, lang: str = "en") -> str:
    en, zh = GROUPS.get(group, (group.replace("_", " ").capitalize(),) * 2)
    return zh if lang == "zh" else en


def defaults(command: str | None = None) -> dict[str, Any]:
    return {a.name: _copy(a.default) for a in ARGS if command is None or command in a.commands}


def _copy(v):
    return list(v) if isinstance(v, list) else v


class Namespace:
    """The arguments of a run or a session: always every argument of the schema (its default where none was
    given), read as attributes (ns.learning_rate) over the plain dict `values`, which YAML round-trips as is.
    `explicit` names the arguments the recipe or the command line gave; it is not one of the values."""

    __slots__ = ("values", "explicit")

    def __init__(self, values: dict | None = None, explicit: Iterable[str] = ()):
        full = defaults()
        full.update(values or {})
        object.__setattr__(self, "values", full)
        object.__setattr__(self, "explicit", frozenset(explicit))

    def __getattr__(self, name):
        if name in Namespace.__slots__:  # not set yet (copy / pickle): never recurse
            raise AttributeError(name)
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        if name in Namespace.__slots__:
            object.__setattr__(self, name, value)
        else:
            self.values[name] = value

    def __getstate__(self):
        return {"values": self.values, "explicit": self.explicit}

    def __setstate__(self, state):
        object.__setattr__(self, "values", state["values"])
        object.__setattr__(self, "explicit", frozenset(state.get("explicit", ())))

    def __eq__(self, other):
        return isinstance(other, Namespace) and (self.values, self.explicit) == (other.values, other.explicit)

    def __repr__(self):
        return f"Namespace({self.values!r}, explicit={sorted(self.explicit)!r})"

    def to_dict(self) -> dict:
        return dict(self.values)


def values_of(args: Any) -> dict:
    """The full values of a Namespace, a dict or an attribute object (SimpleNamespace), None meaning none given:
    the schema's defaults for whatever it lacks. For readers that also take a form's typed values (the precision
    choice); engine functions that run a command take the validated Namespace and read its attributes."""
    if isinstance(args, Namespace):
        return dict(args.values)
    out = defaults()
    if args is not None:
        out.update(args if isinstance(args, dict) else vars(args))
    return out
