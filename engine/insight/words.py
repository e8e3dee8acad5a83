"""Every word of engine.insight that a person reads, in English and Chinese: one table, one format.

    W[key] = {"en": ..., "zh": ...}        t(key, lang, **fmt) -> the text in `lang` (English when missing)
    evidence_label(name, lang) -> the label of an evidence number (its own name in English)

Keys by prefix: verdict_ / sum_ / adv_ / note_ / h_ the doctor's report, ev_ its evidence, est_ the pre-flight
estimate, ins_ the dataset inspector, cmp_ the run comparison, sweep_ the learning-rate sweep. Error messages
(UserError) stay English, as everywhere in the engine; figure text stays English (matplotlib's default font has
no CJK glyphs).
"""
from __future__ import annotations

W: dict[str, dict[str, str]] = {
    # ================================================================ the doctor
    "verdict_healthy": {"en": "Healthy", "zh": "健康"},
    "verdict_undertrained": {"en": "Under-trained", "zh": "训练不足"},
    "verdict_overfitting": {"en": "Overfitting", "zh": "过拟合"},
    "verdict_diverging": {"en": "Diverging / unstable", "zh": "发散 / 不稳定"},
    "verdict_not_learning": {"en": "Not learning", "zh": "没有在学习"},
    "verdict_data_problem": {"en": "Data problem", "zh": "数据问题"},
    "verdict_capacity_limit": {"en": "Capacity limit", "zh": "容量不足"},
    "verdict_failed": {"en": "Failed", "zh": "运行失败"},
    # one-line summaries, by the reason that decided the verdict
    "sum_cut_all": {"en": "The run stopped before training: cutoff_len={cutoff_len} cuts every sample "
                          "(lengths p95 {p95}, max {max_len} tokens).",
                    "zh": "训练开始前就停止了：cutoff_len={cutoff_len} 截断了所有样本（长度 p95 {p95}，最大 {max_len}）。"},
    "sum_data_error": {"en": "The run failed on its data: {error}", "zh": "运行因数据出错而失败：{error}"},
    "sum_cut_most": {"en": "{truncated_pct}% of the samples are cut by cutoff_len={cutoff_len} (p95 length {p95}, "
                           "max {max_len}): the model trains on fragments.",
                     "zh": "{truncated_pct}% 的样本被 cutoff_len={cutoff_len} 截断（p95 长度 {p95}，最大 {max_len}），"
                           "模型学到的是残缺的样本。"},
    "sum_dropped_most": {"en": "{dropped_pct}% of the samples were dropped while reading the dataset.",
                         "zh": "读取数据集时丢弃了 {dropped_pct}% 的样本。"},
    "sum_dup_most": {"en": "{duplicates_pct}% of the training records are exact repeats ({duplicates}): the model "
                           "sees a few samples many times.",
                     "zh": "{duplicates_pct}% 的训练记录是完全重复的（{duplicates} 条）：模型反复看到少数几条样本。"},
    "sum_no_trained_tokens": {"en": "No token is trained: every label is masked.",
                              "zh": "没有任何 token 参与训练：所有标签都被屏蔽了。"},
    "sum_template": {"en": "The template `{template}` is not the model's own (`{expected_template}`): it learns a "
                           "format it was not built for and may never stop answering.",
                     "zh": "模板 `{template}` 不是该模型自己的模板（`{expected_template}`）：模型会学习一种陌生格式，"
                           "回答可能无法停止。"},
    "sum_failed": {"en": "The run failed before its first training step: {error}.",
                   "zh": "运行在第一步训练之前就失败了：{error}。"},
    "sum_failed_at": {"en": "The run failed at step {last_step}: {error}.",
                      "zh": "运行在第 {last_step} 步失败：{error}。"},
    "sum_nonfinite": {"en": "The loss or gradient became NaN/inf (first at step {nonfinite_first}).",
                      "zh": "损失或梯度变成了 NaN/inf（首次出现在第 {nonfinite_first} 步）。"},
    "sum_ends_above": {"en": "The loss ended above where it started ({loss_start} -> {loss_end}, {loss_change}; noise "
                             "alone moves it about ±{change_noise}%): training diverged.",
                       "zh": "损失最终高于起点（{loss_start} -> {loss_end}，{loss_change}；仅噪声约为 ±{change_noise}%）："
                             "训练发散了。"},
    "sum_rebound": {"en": "The loss fell {loss_moved_pct}% below its start and then climbed back ({loss_start} -> "
                          "{loss_end}, {loss_change}): training is unstable.",
                    "zh": "损失先降到比起点低 {loss_moved_pct}%，随后又升回来（{loss_start} -> {loss_end}，{loss_change}）："
                          "训练不稳定。"},
    "sum_blowup": {"en": "The loss blew up to {loss_max_smoothed} from {loss_first} at the start: unstable.",
                   "zh": "损失从起点 {loss_first} 暴涨到 {loss_max_smoothed}：训练不稳定。"},
    "sum_spikes": {"en": "The loss spiked repeatedly (steps {spike_steps}).",
                   "zh": "损失多次突然飙升（第 {spike_steps} 步）。"},
    "sum_grad_explosion": {"en": "The gradient norm exploded to {grad_norm_max_late} (median {grad_norm_median}).",
                           "zh": "梯度范数暴涨到 {grad_norm_max_late}（中位数 {grad_norm_median}）。"},
    "sum_flat": {"en": "The loss did not fall: {loss_start} at the start, {loss_end} at the end ({loss_change}; noise "
                       "alone moves it about ±{change_noise}%), at learning rate {learning_rate}.",
                 "zh": "损失没有下降：开始 {loss_start}，结束 {loss_end}（{loss_change}；仅噪声约为 ±{change_noise}%），"
                       "学习率 {learning_rate}。"},
    "sum_already_low": {"en": "The loss started low ({loss_start}) and stayed there ({loss_end}, {loss_change}): the "
                              "model already fits this data, so there is little left to learn from it.",
                        "zh": "损失一开始就很低（{loss_start}）并保持在那里（{loss_end}，{loss_change}）：模型已经拟合了"
                              "这些数据，能从中学到的已经不多。"},
    "sum_eval_rising": {"en": "Eval loss was best at step {eval_best_step} ({eval_best}) and then rose to {eval_last} "
                              "(+{eval_rise_pct}%) while train loss kept falling ({train_loss_at_best_eval} -> "
                              "{loss_end}): the model memorises the training set.",
                        "zh": "评估损失在第 {eval_best_step} 步最好（{eval_best}），之后升到 {eval_last}"
                              "（+{eval_rise_pct}%），而训练损失仍在下降（{train_loss_at_best_eval} -> {loss_end}）："
                              "模型在死记训练集。"},
    "sum_memorised": {"en": "Train loss is near zero ({loss_end}) on only {samples_train} samples: the model has "
                            "memorised them.",
                      "zh": "仅 {samples_train} 条样本上训练损失接近 0（{loss_end}）：模型已经把它们背下来了。"},
    "sum_plateau_high": {"en": "Train and eval loss both flattened at a high level ({loss_end}, eval {eval_last}) "
                               "after falling from {loss_start}: the trainable part cannot fit more.",
                         "zh": "训练和评估损失从 {loss_start} 下降后都停在较高水平（{loss_end}，评估 {eval_last}）："
                               "可训练部分已无法拟合更多。"},
    "sum_still_falling": {"en": "The loss is still falling at the end ({recent_drop_pct}% since step "
                                "{recent_from_step}, {recent_share_pct}% of its whole drop): more training will help.",
                          "zh": "训练结束时损失仍在下降（自第 {recent_from_step} 步以来下降 {recent_drop_pct}%，"
                                "占总下降的 {recent_share_pct}%）：继续训练会更好。"},
    "sum_little_progress": {"en": "The loss is falling, but slowly ({loss_start} -> {loss_end}, {loss_change}): far "
                                  "too little training for this learning rate.",
                            "zh": "损失在下降，但很慢（{loss_start} -> {loss_end}，{loss_change}）："
                                  "以当前学习率训练量远远不够。"},
    "sum_not_flat": {"en": "The loss fell ({loss_start} -> {loss_end}, {loss_change}) but has not clearly flattened "
                           "out: train longer to see where it settles.",
                     "zh": "损失下降了（{loss_start} -> {loss_end}，{loss_change}），但还没有明显趋于平稳："
                           "继续训练，看它停在哪里。"},
    "sum_not_taught": {"en": "The loss fell ({loss_start} -> {loss_end}, {loss_change}) but not far enough for the "
                             "{dataset} dataset to have taught the model (below {taught_pct}% of its start): it will "
                             "not answer as taught yet.",
                       "zh": "损失下降了（{loss_start} -> {loss_end}，{loss_change}），但还不够低，{dataset} 数据集"
                             "还没有教会模型（需低于起点的 {taught_pct}%）：模型暂时还不会按所教的回答。"},
    "sum_few_points": {"en": "Only {train_points} losses were logged ({loss_start} -> {loss_end}, {loss_change}): too "
                             "few to tell learning from noise.",
                       "zh": "只记录了 {train_points} 个损失值（{loss_start} -> {loss_end}，{loss_change}）："
                             "太少，无法区分学习与噪声。"},
    "sum_schedule_ran_out": {"en": "The loss flattened at {loss_end} only because the learning rate decayed to "
                                   "~0 (last 40%: {recent_lr_pct}% of the peak) while each unit of learning rate still "
                                   "lowered it ({recent_lr_share_pct}% of the drop came from the last 40% of the "
                                   "learning-rate budget): train longer.",
                             "zh": "损失停在 {loss_end} 只是因为学习率已衰减到接近 0（最后 40%：峰值的 {recent_lr_pct}%），"
                                   "而每一份学习率仍在降低损失（最后 40% 的学习率预算带来了 {recent_lr_share_pct}% 的下降）："
                                   "需要训练更久。"},
    "sum_too_early": {"en": "Too early to judge: {train_points} logged step(s) so far.",
                      "zh": "现在判断还太早：目前只记录了 {train_points} 步。"},
    "sum_learned": {"en": "Learned ({loss_start} -> {loss_end}, {loss_change}) and flattened out (from step "
                          "{plateau_step}, {after_plateau_pct}% of the run after it); eval loss {eval_last}, "
                          "not rising.",
                    "zh": "已学到东西（{loss_start} -> {loss_end}，{loss_change}）并趋于平稳（自第 {plateau_step} 步起，"
                          "其后占训练的 {after_plateau_pct}%）；评估损失 {eval_last}，没有上升。"},
    "sum_learned_noeval": {"en": "Learned ({loss_start} -> {loss_end}, {loss_change}) and flattened out (from step "
                                 "{plateau_step}, {after_plateau_pct}% of the run after it).",
                           "zh": "已学到东西（{loss_start} -> {loss_end}，{loss_change}）并趋于平稳（自第 {plateau_step} "
                                 "步起，其后占训练的 {after_plateau_pct}%）。"},
    "sum_no_points": {"en": "The run logged no training step.", "zh": "该运行没有记录任何训练步。"},
    # advice
    "adv_template": {"en": "Use the model's own chat template `{expected}` instead of `{template}`.",
                     "zh": "改用模型自己的对话模板 `{expected}`，而不是 `{template}`。"},
    "adv_cutoff_nolen": {"en": "Raise cutoff_len from {cutoff} so whole samples fit ({pct}% cut).",
                         "zh": "把 cutoff_len 从 {cutoff} 调大，让样本完整保留（{pct}% 被截断）。"},
    "adv_cutoff": {"en": "Raise cutoff_len from {cutoff} so whole samples fit ({pct}% cut; p95 {p95}, max {max_len} "
                         "tokens).",
                   "zh": "把 cutoff_len 从 {cutoff} 调大，让样本完整保留（{pct}% 被截断；p95 {p95}，最大 {max_len}）。"},
    "adv_dropped": {"en": "{pct}% of the records were skipped ({reasons}): check the dataset's columns mapping in "
                          "dataset_info.json.",
                    "zh": "{pct}% 的记录被跳过（{reasons}）：请检查 dataset_info.json 中的列映射。"},
    "adv_dropped_noreason": {"en": "{pct}% of the records were skipped: check the dataset's columns mapping in "
                                   "dataset_info.json.",
                             "zh": "{pct}% 的记录被跳过：请检查 dataset_info.json 中的列映射。"},
    "adv_dedup": {"en": "Remove the {n} duplicate records ({pct}%) from the dataset file.",
                  "zh": "从数据文件中删除 {n} 条重复记录（{pct}%）。"},
    "adv_masking": {"en": "Train on the answers: turn train_on_prompt and mask_history off and check the preview.",
                    "zh": "在回答上训练：关闭 train_on_prompt 和 mask_history，并检查数据预览。"},
    "adv_data_error": {"en": "Fix the dataset problem named in the error: {error}",
                       "zh": "按错误信息修复数据集问题：{error}"},
    "adv_lr_down": {"en": "Lower the learning rate ten-fold (now {lr}).", "zh": "把学习率降低到十分之一（当前 {lr}）。"},
    "adv_warmup": {"en": "Warm the learning rate up over the first 10% of steps.",
                   "zh": "在前 10% 的步数内预热学习率。"},
    "adv_clip": {"en": "Clip gradients at norm 1.0.", "zh": "把梯度裁剪阈值设为 1.0。"},
    "adv_bf16": {"en": "Use bf16 instead of fp16 (no overflow).", "zh": "用 bf16 代替 fp16（不会溢出）。"},
    "adv_lr_up": {"en": "Raise the learning rate from {lr} to {new} (usual for {what}: {lo} to {hi}).",
                  "zh": "把学习率从 {lr} 提高到 {new}（{what} 的常用范围：{lo} ~ {hi}）。"},
    "adv_lr_at_top": {"en": "The learning rate {lr} is already at the top of the usual range for {what} ({lo} to {hi}): "
                            "look at the data rather than the rate.",
                      "zh": "学习率 {lr} 已经在 {what} 常用范围（{lo} ~ {hi}）的上限：问题更可能在数据，而不是学习率。"},
    "recipe_filled": {"en": "{dataset}: {changes} (the settings it needs to teach in a short run; yours stay as "
                            "you set them)",
                      "zh": "{dataset}：{changes}（短训练教会模型所需的设置；你改过的值保持不变）"},
    "adv_recipe": {"en": "Use the settings the {dataset} dataset needs to teach in a short run (its recipe).",
                   "zh": "使用 {dataset} 数据集在短训练中教会模型所需的设置（它的配方）。"},
    "adv_log_more": {"en": "Log the loss more often: {n} values cannot show a trend.",
                     "zh": "更频繁地记录损失：{n} 个数值看不出趋势。"},
    "adv_check_masking": {"en": "Open the dataset preview: the highlighted (trained) tokens must be the answers, and "
                                "the template must be the model's.",
                          "zh": "打开数据预览：高亮（参与训练）的部分应是回答，模板应是模型自己的模板。"},
    "adv_check_masking@pt": {"en": "Open the dataset preview: pre-training learns every token of the text, so check "
                                   "the texts are the ones you meant (not empty, not cut short).",
                             "zh": "打开数据预览：预训练会学习文本中的每个 token，请确认文本正是你想要的（不为空、没有被截短）。"},
    "adv_check_masking@rm": {"en": "Open the dataset preview: the chosen answer of each pair must be the better one and "
                                   "differ from the rejected one.",
                             "zh": "打开数据预览：每对中被选中的回答应是更好的那个，且与被拒绝的回答不同。"},
    "adv_check_masking@dpo": {"en": "Open the dataset preview: the chosen answer of each pair must be the better one "
                                    "and differ from the rejected one.",
                              "zh": "打开数据预览：每对中被选中的回答应是更好的那个，且与被拒绝的回答不同。"},
    "adv_check_masking@kto": {"en": "Open the dataset preview: the desirable / undesirable labels must match the "
                                    "answers, with both kinds present.",
                              "zh": "打开数据预览：“好 / 坏”标签应与回答相符，并且两类都要有。"},
    "adv_fix_field": {"en": "Fix {field} as the error says, then start the run again.",
                      "zh": "按错误信息修改 {field}，然后重新开始训练。"},
    "adv_fix_error": {"en": "Fix what the error names, then start the run again.",
                      "zh": "按错误信息修复所指出的问题，然后重新开始训练。"},
    "adv_oom": {"en": "Out of memory: halve the micro-batch (accumulating twice as many steps, the same global batch) "
                      "and recompute activations in the backward pass.",
                "zh": "内存不足：微批大小减半（梯度累积加倍，全局批大小不变），并在反向时重新计算激活。"},
    "adv_keep_best": {"en": "Keep the checkpoint with the lowest eval loss and stop when eval stops improving.",
                      "zh": "保留评估损失最低的检查点，并在评估不再改善时提前停止。"},
    "adv_shorter": {"en": "Train shorter: eval loss was best at step {step}.",
                    "zh": "缩短训练：评估损失在第 {step} 步最好。"},
    "adv_shorter_half": {"en": "Train half as long (without evaluations nothing says where it was best).",
                         "zh": "训练时长减半（没有评估，无法知道哪一步最好）。"},
    "adv_add_eval": {"en": "Hold out 10% of the data for evaluation so overfitting shows.",
                     "zh": "留出 10% 的数据做评估，才能看出是否过拟合。"},
    "adv_lr_down_overfit": {"en": "Halve the learning rate (now {lr}).", "zh": "把学习率减半（当前 {lr}）。"},
    "adv_smaller_lora": {"en": "Regularise the adapter: smaller LoRA rank, more LoRA dropout.",
                         "zh": "约束适配器：更小的 LoRA 秩，更大的 LoRA dropout。"},
    "adv_use_lora": {"en": "Train a LoRA adapter instead of every weight.", "zh": "改用 LoRA，而不是训练全部参数。"},
    "adv_fewer_layers": {"en": "Train fewer layers.", "zh": "训练更少的层。"},
    "adv_more_data_cap": {"en": "Use all the data: max_samples={n} caps it.", "zh": "使用全部数据：max_samples={n} 限制了样本数。"},
    "adv_more_data_any": {"en": "Add more (varied) training samples.", "zh": "增加更多（更多样的）训练样本。"},
    "adv_more_data": {"en": "Add more (varied) training samples: {n} is little.",
                      "zh": "增加更多（更多样的）训练样本：{n} 条太少了。"},
    "adv_bigger_lora": {"en": "Give the adapter more capacity: LoRA rank {r} -> 4x, on every linear layer.",
                        "zh": "增大适配器容量：LoRA 秩 {r} -> 4 倍，并作用于所有线性层。"},
    "adv_full_ft": {"en": "Fine-tune every weight (full) with a small learning rate.",
                    "zh": "以较小学习率进行全参数微调。"},
    "adv_more_layers": {"en": "Train twice as many layers, every module in them.",
                        "zh": "训练两倍数量的层，并训练其中所有模块。"},
    "adv_bigger_model": {"en": "If that is not enough: a larger model.", "zh": "如果仍然不够：换一个更大的模型。"},
    "adv_longer": {"en": "Train twice as long.", "zh": "训练时间加倍。"},
    "adv_lr_up_undertrained": {"en": "The schedule decayed to ~0 while the loss still fell: try a higher peak learning "
                                     "rate (now {lr}).",
                               "zh": "学习率已衰减到接近 0 而损失仍在下降：可尝试更高的峰值学习率（当前 {lr}）。"},
    # notes
    "note_some_cut": {"en": "{pct}% of samples are cut by cutoff_len={cutoff} (max length {max_len}).",
                      "zh": "{pct}% 的样本被 cutoff_len={cutoff} 截断（最大长度 {max_len}）。"},
    "note_some_cut_nomax": {"en": "{pct}% of samples are cut by cutoff_len={cutoff}.",
                            "zh": "{pct}% 的样本被 cutoff_len={cutoff} 截断。"},
    "note_some_dups": {"en": "{n} training records ({pct}%) are exact repeats.",
                       "zh": "{n} 条训练记录（{pct}%）完全重复。"},
    "note_few_samples": {"en": "Only {n} training samples.", "zh": "只有 {n} 条训练样本。"},
    "note_no_eval": {"en": "No evaluation set: overfitting cannot be seen (set val_size).",
                     "zh": "没有评估集：无法发现过拟合（请设置 val_size）。"},
    "note_running": {"en": "Still running (step {step} of {total}): this is a verdict so far.",
                     "zh": "仍在运行（第 {step}/{total} 步）：这是目前为止的判断。"},
    "note_running_nototal": {"en": "Still running (step {step}): this is a verdict so far.",
                             "zh": "仍在运行（第 {step} 步）：这是目前为止的判断。"},
    "note_no_best_ckpt": {"en": "No checkpoint was saved at step {step}, where eval loss was best (save_steps equal to "
                                "eval_steps, or load_best_model_at_end=true, keeps it).",
                          "zh": "评估损失最好的第 {step} 步没有保存检查点（令 save_steps 等于 eval_steps，"
                                "或设置 load_best_model_at_end=true，即可保留）。"},
    "note_aborted": {"en": "Aborted at step {step}.", "zh": "在第 {step} 步被中止。"},
    "note_failed": {"en": "The run failed: {error}", "zh": "运行失败：{error}"},
    # words of the text report
    "h_evidence": {"en": "Evidence", "zh": "依据"},
    "h_advice": {"en": "What to change", "zh": "建议的修改"},
    "h_best": {"en": "Best checkpoint (lowest eval loss)", "zh": "最佳检查点（评估损失最低）"},
    "h_notes": {"en": "Also", "zh": "另外"},
    "h_also": {"en": "Other signs", "zh": "其它迹象"},
    "none": {"en": "none", "zh": "无"},
    # the method a piece of advice speaks of ("usual for LoRA <the stage's own words>")
    "method_lora": {"en": "LoRA", "zh": "LoRA"}, "method_freeze": {"en": "freeze-tuning", "zh": "冻结"},
    "method_full": {"en": "full", "zh": "全参"},
    "verdict": {"en": "Verdict", "zh": "结论"},

    # ---- the evidence a person reads first: a label and its numbers in words (doctor.evidence_rows), in this order
    "evk_error": {"en": "Error", "zh": "错误"}, "evv_error": {"en": "{error}", "zh": "{error}"},
    "evk_loss": {"en": "Training loss", "zh": "训练损失"},
    "evv_loss": {"en": "{loss_start} at the start → {loss_end} at the end ({loss_change})",
                 "zh": "开始 {loss_start} → 结束 {loss_end}（{loss_change}）"},
    "evk_noise": {"en": "Noise", "zh": "噪声"},
    "evv_noise": {"en": "chance alone moves the start-to-end change by about ±{change_noise}%",
                  "zh": "仅靠偶然，起止之间的变化约为 ±{change_noise}%"},
    "evk_flat": {"en": "Flat from", "zh": "趋于平稳"},
    "evv_flat": {"en": "step {plateau_step} ({after_plateau_pct}% of the run after it)",
                 "zh": "自第 {plateau_step} 步起（其后占训练的 {after_plateau_pct}%）"},
    "evk_recent": {"en": "Last 40 % of the steps", "zh": "最后 40% 的步数"},
    "evv_recent": {"en": "{recent_drop_pct}% lower, {recent_share_pct}% of the whole drop",
                   "zh": "下降 {recent_drop_pct}%，占总下降的 {recent_share_pct}%"},
    "evk_eval": {"en": "Eval loss", "zh": "评估损失"},
    "evv_eval": {"en": "{eval_first} first → {eval_last} last; best {eval_best} at step {eval_best_step}",
                 "zh": "首次 {eval_first} → 最后 {eval_last}；最佳 {eval_best}（第 {eval_best_step} 步）"},
    "evk_reward_accuracies": {"en": "Reward accuracy", "zh": "奖励准确率"},
    "evk_accuracy": {"en": "Accuracy", "zh": "准确率"},
    "evk_reward_margins": {"en": "Reward margin", "zh": "奖励间隔"},
    "evv_headline": {"en": "{first} first → {last} last (best {best})", "zh": "首次 {first} → 最后 {last}（最佳 {best}）"},
    "evk_steps": {"en": "Steps", "zh": "步数"},
    "evv_steps": {"en": "{last_step} of {total_steps}; {train_points} losses logged, {eval_points} evaluations",
                  "zh": "{last_step} / {total_steps}；记录了 {train_points} 个损失值、{eval_points} 次评估"},
    "evv_steps_nototal": {"en": "{last_step}; {train_points} losses logged, {eval_points} evaluations",
                          "zh": "{last_step}；记录了 {train_points} 个损失值、{eval_points} 次评估"},
    "evk_lr": {"en": "Learning rate", "zh": "学习率"},
    "evv_lr": {"en": "{lr_peak} at its peak, {lr_end} at the end", "zh": "峰值 {lr_peak}，结束时 {lr_end}"},
    "evk_samples": {"en": "Samples", "zh": "样本"},
    "evv_samples_cut": {"en": "{samples_train} to train on, {truncated_pct}% cut by cutoff_len {cutoff_len}",
                        "zh": "训练样本 {samples_train} 条，{truncated_pct}% 被 cutoff_len {cutoff_len} 截断"},
    "evv_samples": {"en": "{samples_train} to train on", "zh": "训练样本 {samples_train} 条"},
    "evk_duplicates": {"en": "Repeated records", "zh": "重复记录"},
    "evv_duplicates": {"en": "{duplicates} ({duplicates_pct}%)", "zh": "{duplicates} 条（{duplicates_pct}%）"},
    "evk_grad": {"en": "Gradient norm", "zh": "梯度范数"},
    "evv_grad": {"en": "median {grad_norm_median}, largest {grad_norm_max} at step {grad_norm_max_step}",
                 "zh": "中位数 {grad_norm_median}，最大 {grad_norm_max}（第 {grad_norm_max_step} 步）"},
    "ev_more": {"en": "All the numbers ({n}, as --json names them)", "zh": "全部数值（{n} 项，名称同 --json）"},
    # ---- evidence labels (English: the name itself, as --json prints it)
    "ev_train_points": {"en": "train_points", "zh": "训练日志点数"}, "ev_eval_points": {"en": "eval_points", "zh": "评估次数"},
    "ev_last_step": {"en": "last_step", "zh": "最后一步"}, "ev_total_steps": {"en": "total_steps", "zh": "总步数"},
    "ev_nonfinite_steps": {"en": "nonfinite_steps", "zh": "NaN/inf 出现的步"}, "ev_epochs": {"en": "epochs", "zh": "轮数"},
    "ev_accuracy_first": {"en": "accuracy_first", "zh": "准确率（首次）"},
    "ev_accuracy_last": {"en": "accuracy_last", "zh": "准确率（最后）"},
    "ev_accuracy_best": {"en": "accuracy_best", "zh": "准确率（最佳）"},
    "ev_accuracy_held_out": {"en": "accuracy_held_out", "zh": "准确率来自验证集"},
    "ev_reward_accuracies_first": {"en": "reward_accuracies_first", "zh": "奖励准确率（首次）"},
    "ev_reward_accuracies_last": {"en": "reward_accuracies_last", "zh": "奖励准确率（最后）"},
    "ev_reward_accuracies_best": {"en": "reward_accuracies_best", "zh": "奖励准确率（最佳）"},
    "ev_reward_accuracies_held_out": {"en": "reward_accuracies_held_out", "zh": "奖励准确率来自验证集"},
    "ev_reward_margins_first": {"en": "reward_margins_first", "zh": "奖励间隔（首次）"},
    "ev_reward_margins_last": {"en": "reward_margins_last", "zh": "奖励间隔（最后）"},
    "ev_reward_margins_best": {"en": "reward_margins_best", "zh": "奖励间隔（最佳）"},
    "ev_reward_margins_held_out": {"en": "reward_margins_held_out", "zh": "奖励间隔来自验证集"},
    "ev_lr_peak": {"en": "lr_peak", "zh": "峰值学习率"}, "ev_lr_end": {"en": "lr_end", "zh": "最终学习率"},
    "ev_loss_first": {"en": "loss_first", "zh": "第一步损失"}, "ev_loss_start": {"en": "loss_start", "zh": "起始损失"},
    "ev_loss_end": {"en": "loss_end", "zh": "最终损失"}, "ev_loss_min": {"en": "loss_min", "zh": "最低损失"},
    "ev_loss_drop_pct": {"en": "loss_drop_pct", "zh": "损失下降 %"},
    "ev_loss_max_smoothed": {"en": "loss_max_smoothed", "zh": "最高损失（平滑）"},
    "ev_spike_steps": {"en": "spike_steps", "zh": "尖峰所在步"}, "ev_noise": {"en": "noise", "zh": "末段噪声"},
    "ev_noise_sigma": {"en": "noise_sigma", "zh": "逐步噪声 σ"},
    "ev_recent_drop_pct": {"en": "recent_drop_pct", "zh": "末段下降 %"},
    "ev_recent_slope_t": {"en": "recent_slope_t", "zh": "末段下降显著性 t"},
    "ev_recent_from_step": {"en": "recent_from_step", "zh": "末段起始步"},
    "ev_recent_share_pct": {"en": "recent_share_pct", "zh": "末段下降占总下降 %"},
    "ev_recent_share_se_pct": {"en": "recent_share_se_pct", "zh": "该占比的标准误 %"},
    "ev_recent_lr_from_step": {"en": "recent_lr_from_step", "zh": "学习率预算末段起始步"},
    "ev_recent_lr_drop_pct": {"en": "recent_lr_drop_pct", "zh": "学习率预算末段下降 %"},
    "ev_recent_lr_share_pct": {"en": "recent_lr_share_pct", "zh": "学习率预算末段下降占总下降 %"},
    "ev_recent_lr_slope_t": {"en": "recent_lr_slope_t", "zh": "学习率预算末段显著性 t"},
    "ev_recent_lr_ratio": {"en": "recent_lr_ratio", "zh": "末段学习率 / 峰值"},
    "ev_eval_recent_drop_pct": {"en": "eval_recent_drop_pct", "zh": "末段评估损失下降 %"},
    "ev_eval_recent_share_pct": {"en": "eval_recent_share_pct", "zh": "末段评估下降占其总下降 %"},
    "ev_eval_recent_lr_drop_pct": {"en": "eval_recent_lr_drop_pct", "zh": "学习率预算末段评估下降 %"},
    "ev_eval_recent_lr_share_pct": {"en": "eval_recent_lr_share_pct", "zh": "学习率预算末段评估下降占比 %"},
    "ev_plateau_step": {"en": "plateau_step", "zh": "进入平台的步"},
    "ev_loss_moved_pct": {"en": "loss_moved_pct", "zh": "损失离开起点的幅度 %"},
    "ev_loss_moved_noise_pct": {"en": "loss_moved_noise_pct", "zh": "该幅度的噪声范围 %"},
    "ev_loss_change_noise_pct": {"en": "loss_change_noise_pct", "zh": "起止变化的噪声范围 %"},
    "ev_loss_rose_pct": {"en": "loss_rose_pct", "zh": "损失相对起点的上升 %"},
    "ev_loss_trend_t": {"en": "loss_trend_t", "zh": "全程下降趋势 t"},
    "ev_eval_drop_noise_pct": {"en": "eval_drop_noise_pct", "zh": "评估下降的噪声范围 %"},
    "ev_after_plateau_pct": {"en": "after_plateau_pct", "zh": "平台之后的训练占比 %"},
    "ev_grad_norm_max_late": {"en": "grad_norm_max_late", "zh": "前 10% 之后梯度范数最大值"},
    "ev_eval_noise_sigma": {"en": "eval_noise_sigma", "zh": "评估损失噪声 σ"},
    "ev_train_drop_noise_pct": {"en": "train_drop_noise_pct", "zh": "该下降的噪声范围 %"},
    "ev_grad_norm_median": {"en": "grad_norm_median", "zh": "梯度范数中位数"},
    "ev_grad_norm_max": {"en": "grad_norm_max", "zh": "梯度范数最大值"},
    "ev_grad_norm_max_step": {"en": "grad_norm_max_step", "zh": "梯度范数最大的步"},
    "ev_eval_first": {"en": "eval_first", "zh": "首次评估损失"}, "ev_eval_best": {"en": "eval_best", "zh": "最佳评估损失"},
    "ev_eval_best_step": {"en": "eval_best_step", "zh": "最佳评估所在步"},
    "ev_eval_best_epoch": {"en": "eval_best_epoch", "zh": "最佳评估所在轮"},
    "ev_eval_last": {"en": "eval_last", "zh": "最后评估损失"},
    "ev_eval_rise_pct": {"en": "eval_rise_pct", "zh": "评估损失回升 %"},
    "ev_evals_after_best": {"en": "evals_after_best", "zh": "最佳之后的评估次数"},
    "ev_evals_above_best": {"en": "evals_above_best", "zh": "高于最佳的评估次数"},
    "ev_eval_drop_pct": {"en": "eval_drop_pct", "zh": "评估损失下降 %"},
    "ev_train_loss_at_best_eval": {"en": "train_loss_at_best_eval", "zh": "最佳评估时的训练损失"},
    "ev_train_drop_since_best_pct": {"en": "train_drop_since_best_pct", "zh": "最佳评估后训练损失下降 %"},
    "ev_eval_gap_pct": {"en": "eval_gap_pct", "zh": "评估与训练损失差 %"},
    "ev_eval_recent_range_pct": {"en": "eval_recent_range_pct", "zh": "最近三次评估波动 %"},
    "ev_samples_total": {"en": "samples_total", "zh": "样本总数"},
    "ev_samples_train": {"en": "samples_train", "zh": "训练样本"},
    "ev_samples_eval": {"en": "samples_eval", "zh": "评估样本"}, "ev_truncated": {"en": "truncated", "zh": "被截断样本"},
    "ev_truncated_pct": {"en": "truncated_pct", "zh": "截断比例 %"}, "ev_dropped": {"en": "dropped", "zh": "被丢弃样本"},
    "ev_dropped_pct": {"en": "dropped_pct", "zh": "丢弃比例 %"},
    "ev_dropped_reasons": {"en": "dropped_reasons", "zh": "丢弃原因"},
    "ev_cutoff_len": {"en": "cutoff_len", "zh": "截断长度"}, "ev_p50": {"en": "p50", "zh": "长度 p50"},
    "ev_p95": {"en": "p95", "zh": "长度 p95"}, "ev_max_len": {"en": "max_len", "zh": "最大长度"},
    "ev_trained_tokens": {"en": "trained_tokens", "zh": "参与训练的 token"}, "ev_state": {"en": "state", "zh": "状态"},
    "ev_error": {"en": "error", "zh": "错误"}, "ev_template": {"en": "template", "zh": "模板"},
    "ev_expected_template": {"en": "expected_template", "zh": "模型自己的模板"},
    "ev_duplicates": {"en": "duplicates", "zh": "重复记录"},
    "ev_duplicates_pct": {"en": "duplicates_pct", "zh": "重复比例 %"},
    # ================================================================ the estimate (estimate.py)
    "est_samples": {"en": "Samples", "zh": "样本"}, "est_kept": {"en": "kept", "zh": "保留"},
    "est_truncated": {"en": "truncated", "zh": "截断"}, "est_dropped": {"en": "dropped", "zh": "丢弃"},
    "est_train": {"en": "train", "zh": "训练"}, "est_eval": {"en": "eval", "zh": "评估"},
    "est_steps": {"en": "Steps", "zh": "步数"}, "est_per_epoch": {"en": "per epoch", "zh": "每轮"},
    "est_global_batch": {"en": "global batch", "zh": "全局批大小"},
    "est_rows": {"en": "rows", "zh": "行"}, "est_devices": {"en": "device(s)", "zh": "个设备"},
    "est_tokens": {"en": "Tokens per epoch", "zh": "每轮 token 数"}, "est_trained": {"en": "trained", "zh": "参与训练"},
    "est_params": {"en": "Parameters", "zh": "参数"}, "est_trainable": {"en": "trainable", "zh": "可训练"},
    "est_precision": {"en": "Compute type", "zh": "计算类型"},
    "est_memory": {"en": "Memory per device", "zh": "每个设备的内存"}, "est_weights": {"en": "weights", "zh": "权重"},
    "est_gradients": {"en": "gradients", "zh": "梯度"}, "est_optimizer": {"en": "optimizer states", "zh": "优化器状态"},
    "est_activations": {"en": "activations", "zh": "激活"}, "est_runtime": {"en": "runtime", "zh": "运行时"},
    "est_generation": {"en": "generation (KV cache)", "zh": "生成（KV 缓存）"},
    "est_total": {"en": "total", "zh": "合计"}, "est_of": {"en": "of", "zh": "/"},
    "est_fits": {"en": "fits", "zh": "可以放下"}, "est_nofit": {"en": "DOES NOT FIT", "zh": "放不下"},
    "est_time": {"en": "Time", "zh": "时间"}, "est_per_step": {"en": "s/step measured", "zh": "秒/步（实测）"},
    "est_startup": {"en": "start-up", "zh": "启动"}, "est_measured_peak": {"en": "measured peak", "zh": "实测峰值"},
    "est_advice": {"en": "To make it fit", "zh": "放得下的办法"},
    "est_offloaded": {"en": "offloaded to host", "zh": "卸载到主机内存"}, "est_zero": {"en": "ZeRO stage", "zh": "ZeRO 阶段"},
    "est_adv_checkpointing": {"en": "recompute activations in backward (slower, far less memory)",
                              "zh": "反向时重新计算激活（更慢，但省很多内存）"},
    "est_adv_half_batch": {"en": "halve the micro-batch and accumulate twice (same global batch)",
                           "zh": "微批大小减半、梯度累积加倍（全局批大小不变）"},
    "est_adv_lora": {"en": "train a LoRA adapter: no gradients or optimizer states for the base weights",
                     "zh": "改训 LoRA 适配器：基座权重不需要梯度和优化器状态"},
    "est_adv_bf16": {"en": "bf16 mixed precision halves activations (and LoRA base weights)",
                     "zh": "bf16 混合精度让激活（以及 LoRA 的基座权重）减半"},
    "est_adv_zero3": {"en": "shard weights, gradients and optimizer states over the GPUs with ZeRO-3",
                      "zh": "用 ZeRO-3 把权重、梯度和优化器状态切分到各个 GPU"},
    "est_adv_qlora": {"en": "QLoRA: load the frozen base in 4 bits (its linear weights at about an eighth of their fp32 size)",
                      "zh": "QLoRA：以 4 比特加载冻结的基座（约为 fp32 权重的八分之一）"},
    # ================================================================ the dataset inspector (inspector.py)
    "ins_samples": {"en": "Samples", "zh": "样本"}, "ins_read": {"en": "read", "zh": "读取"},
    "ins_kept": {"en": "kept", "zh": "保留"}, "ins_dropped": {"en": "dropped", "zh": "丢弃"},
    "ins_lengths": {"en": "Token lengths (after the template)", "zh": "token 长度（套用模板后）"},
    "ins_cut": {"en": "cut by cutoff_len", "zh": "被 cutoff_len 截断"},
    "ins_suggest": {"en": "suggested cutoff_len", "zh": "建议的 cutoff_len"},
    "ins_dups": {"en": "Duplicates", "zh": "重复"}, "ins_groups": {"en": "groups", "zh": "组"},
    "ins_conflicts": {"en": "same prompt, different answers", "zh": "同一提示不同回答"},
    "ins_empty": {"en": "Empty fields", "zh": "空字段"}, "ins_langs": {"en": "Languages", "zh": "语言"},
    "ins_sample": {"en": "Sample", "zh": "样本"},
    "ins_trained": {"en": "trained tokens in [[ ]]", "zh": "[[ ]] 内为参与训练的 token"},
    "ins_none": {"en": "none", "zh": "无"},
    # ================================================================ the comparison (compare.py)
    "cmp_col_name": {"en": "name", "zh": "运行"}, "cmp_col_verdict": {"en": "verdict", "zh": "结论"},
    "cmp_col_steps": {"en": "steps", "zh": "步数"}, "cmp_col_epochs": {"en": "epochs", "zh": "轮数"},
    "cmp_col_final_train_loss": {"en": "final_train_loss", "zh": "最终训练损失"},
    "cmp_col_best_eval_loss": {"en": "best_eval_loss", "zh": "最佳评估损失"},
    "cmp_col_best_eval_step": {"en": "best_eval_step", "zh": "最佳评估步"},
    "cmp_col_final_eval_loss": {"en": "final_eval_loss", "zh": "最终评估损失"},
    "cmp_col_runtime": {"en": "runtime", "zh": "用时(秒)"},
    "cmp_best": {"en": "best: {name} ({by})", "zh": "最佳：{name}（{by}）"},
    "cmp_by_eval_loss": {"en": "lowest eval loss", "zh": "评估损失最低"},
    "cmp_by_train_loss": {"en": "lowest final train loss", "zh": "最终训练损失最低"},
    "cmp_note": {"en": "note: {note}", "zh": "注意：{note}"},
    "cmp_note_no_axis": {"en": "{name}: its log has no {x} values; it is left out of the plot.",
                         "zh": "{name}：日志中没有 {x} 数值，未画入图中。"},
    "cmp_note_other_eval": {"en": "the runs were evaluated on different data or settings: eval losses are not "
                                  "strictly comparable.",
                            "zh": "这些运行的评估数据或设置不同：评估损失不能严格比较。"},
    "cmp_note_no_eval": {"en": "not every run has an eval loss: the best is picked by final train loss, which says "
                               "nothing about unseen data.",
                         "zh": "并非每个运行都有评估损失：最佳运行按最终训练损失挑选，这说明不了模型在未见数据上的表现。"},
    # ================================================================ reward runs (grpo: rewards.py)
    "verdict_reward_hacking": {"en": "Reward hacking", "zh": "奖励被钻空子"},
    "sum_reward_rising": {"en": "The reward rose: {reward_start} -> {reward_end} (+{reward_rise}, t={reward_rise_t}).",
                          "zh": "奖励在上升：{reward_start} -> {reward_end}（+{reward_rise}，t={reward_rise_t}）。"},
    "sum_zero_advantage": {"en": "No learning signal: in {zero_signal_pct}% of the groups every completion got the "
                                 "same reward, so the advantage is zero and the policy does not move (reward "
                                 "{reward_start} -> {reward_end}).",
                           "zh": "没有学习信号：{zero_signal_pct}% 的组里每个回答得分相同，优势为零，策略不会改变"
                                 "（奖励 {reward_start} -> {reward_end}）。"},
    "sum_flat_reward": {"en": "The reward did not rise beyond its noise ({reward_start} -> {reward_end}, "
                              "t={reward_rise_t}) although the groups' rewards differed.",
                        "zh": "虽然组内奖励有差异，奖励并未超出噪声地上升（{reward_start} -> {reward_end}，"
                              "t={reward_rise_t}）。"},
    "sum_format_only": {"en": "Reward hacking: {hacked_by} saturated while the answer reward ({answer_rewards}) stayed "
                              "flat: the model learned the form, not the answer ({reward_by_function}).",
                        "zh": "奖励被钻空子：{hacked_by} 已饱和，而答案奖励（{answer_rewards}）没有上升：模型学会了"
                              "格式而不是答案（{reward_by_function}）。"},
    "sum_length_bound": {"en": "Reward hacking: nearly every completion now runs to max_completion_length "
                               "({clipped_start} -> {clipped_end} of them cut there).",
                         "zh": "奖励被钻空子：几乎每个回答都写到了 max_completion_length（被截断的比例 "
                               "{clipped_start} -> {clipped_end}）。"},
    "sum_empty_completions": {"en": "Reward hacking: the completions collapsed to nothing (mean length "
                                    "{length_start} -> {length_end} tokens).",
                              "zh": "奖励被钻空子：回答缩成了空（平均长度 {length_start} -> {length_end} 个 token）。"},
    "sum_kl_runaway": {"en": "The KL to the starting model runs away: {kl_start} -> {kl_end} nats per token and still "
                             "climbing (t={kl_rise_t}).",
                       "zh": "与初始模型的 KL 失控：{kl_start} -> {kl_end}（每 token 奈特），且仍在上升（t={kl_rise_t}）。"},
    "adv_lr_third": {"en": "Lower the learning rate to a third (now {lr}).", "zh": "把学习率降到三分之一（当前 {lr}）。"},
    "adv_beta_up": {"en": "Hold the policy nearer the starting model: raise grpo_beta (now {beta}).",
                    "zh": "让策略更贴近初始模型：调大 grpo_beta（当前 {beta}）。"},
    "adv_weigh_answer": {"en": "Weigh the answer reward ({answer}) above {hacked} with reward_weights.",
                         "zh": "用 reward_weights 让答案奖励（{answer}）的权重高于 {hacked}。"},
    "adv_read_completions": {"en": "Read the completions table: what is the model doing to earn its reward?",
                             "zh": "查看回答表：模型是靠什么拿到奖励的？"},
    "adv_length_band": {"en": "Reward completions of sensible length: the length preset, up to half of "
                              "max_completion_length ({n}).",
                        "zh": "奖励长度合理的回答：使用 length 预设，上限为 max_completion_length（{n}）的一半。"},
    "adv_more_generations": {"en": "Sample more completions per prompt (num_generations, now {g}): more chances that "
                                   "one of a group scores differently.",
                             "zh": "每个提示多采样一些回答（num_generations，当前 {g}）：组内出现不同得分的机会更多。"},
    "adv_hotter": {"en": "Sample more varied completions: raise grpo_temperature (now {temp}).",
                   "zh": "让采样更多样：调高 grpo_temperature（当前 {temp}）。"},
    "adv_ease_reward": {"en": "Ease the reward so partial successes score (e.g. answer_last_number instead of "
                              "answer_exact, or an easier prompt set).",
                        "zh": "放宽奖励，让部分正确也能得分（例如用 answer_last_number 代替 answer_exact，或换更简单的题目）。"},
    "ev_reward_points": {"en": "reward_points", "zh": "奖励记录点数"},
    "ev_reward_start": {"en": "reward_start", "zh": "奖励（开始）"}, "ev_reward_end": {"en": "reward_end", "zh": "奖励（最后）"},
    "ev_reward_rise": {"en": "reward_rise", "zh": "奖励上升"},
    "ev_reward_rise_t": {"en": "reward_rise_t", "zh": "奖励上升 t 值"},
    "ev_reward_rising": {"en": "reward_rising", "zh": "奖励上升中"},
    "ev_reward_still_rising": {"en": "reward_still_rising", "zh": "奖励在最后仍上升"},
    "ev_zero_signal_share": {"en": "zero_signal_share", "zh": "无信号组占比"},
    "ev_kl_start": {"en": "kl_start", "zh": "KL（开始）"}, "ev_kl_end": {"en": "kl_end", "zh": "KL（最后）"},
    "ev_kl_rise_t": {"en": "kl_rise_t", "zh": "KL 上升 t 值"},
    "ev_length_start": {"en": "length_start", "zh": "回答长度（开始）"},
    "ev_length_end": {"en": "length_end", "zh": "回答长度（最后）"},
    "ev_clipped_start": {"en": "clipped_start", "zh": "截断比例（开始）"},
    "ev_clipped_end": {"en": "clipped_end", "zh": "截断比例（最后）"},
    "ev_hacked_by": {"en": "hacked_by", "zh": "被钻空子的奖励"}, "ev_answer_rewards": {"en": "answer_rewards", "zh": "答案奖励"},
    "ev_reward_by_function": {"en": "reward_by_function", "zh": "各奖励函数"},
    # ================================================================ the learning-rate sweep (sweep.py)
    "sweep_plan": {"en": "sweep of {k} runs x {steps} steps into {out}: learning rates {lrs}",
                   "zh": "学习率扫描：{k} 次运行 x {steps} 步，输出到 {out}：学习率 {lrs}"},
    "sweep_run": {"en": "  lr {lr:<10} {state:<9} best eval loss {loss}", "zh": "  学习率 {lr:<10} {state:<9} 最佳评估损失 {loss}"},
    "sweep_recommend": {"en": "recommended learning_rate={lr} (best eval loss {loss}){edge}",
                        "zh": "推荐学习率 {lr}（最佳评估损失 {loss}）{edge}"},
    "sweep_at_edge": {"en": " (at the edge of the range: widen it around this value)",
                      "zh": "（位于范围边缘：可以以它为中心再扫一次）"},
    "sweep_no_best": {"en": "no run produced an eval loss; nothing to recommend",
                      "zh": "没有任何运行产生评估损失，无法推荐"},
}


def missing(key: str) -> str:
    """What a placeholder the caller left out shows as. The rules pass every number their words name (the tests
    make this raise, over labelled runs of every verdict and reason); a reader never sees the template."""
    return "…"


class _Blank(dict):
    def __missing__(self, key):
        return missing(key)


def t(key: str, lang: str = "en", **fmt) -> str:
    entry = W[key]
    text = entry.get(lang) or entry["en"]
    try:
        return text.format_map(_Blank(fmt))
    except (IndexError, ValueError):
        return text


def ts(key: str, stage: str | None, lang: str = "en", **fmt) -> str:
    """`key` in a stage's own words where the table has them (`<key>@<stage>`), else the common words."""
    return t(f"{key}@{stage}" if f"{key}@{stage}" in W else key, lang, **fmt)


def evidence_label(name: str, lang: str = "en") -> str:
    entry = W.get(f"ev_{name}")
    return (entry.get(lang) or entry["en"]) if entry else name
