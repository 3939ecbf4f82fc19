"""Pure losses: token/sequence log-probs, SFT, preference (DPO/IPO/RPO) and reward-model losses."""

from nemotron_jax.losses.common import masked_nll, sequence_logps, token_logps
from nemotron_jax.losses.preference import (PREFERENCE_KINDS, REWARD_KINDS, chosen_sft_term, preference_loss,
                                            preference_metrics, response_logratio)
from nemotron_jax.losses.reward import (HELPSTEER_ATTRIBUTES, MISSING_LABEL, NEMOTRON4_340B_REWARD_WEIGHTS,
                                        aggregate_reward, bradley_terry_loss, label_mask, ranking_accuracy,
                                        regression_loss)
from nemotron_jax.losses.sft import sft_loss

__all__ = ["HELPSTEER_ATTRIBUTES", "MISSING_LABEL", "NEMOTRON4_340B_REWARD_WEIGHTS", "PREFERENCE_KINDS",
           "REWARD_KINDS", "aggregate_reward", "bradley_terry_loss", "chosen_sft_term", "label_mask", "masked_nll",
           "preference_loss", "preference_metrics", "ranking_accuracy", "regression_loss", "response_logratio",
           "sequence_logps", "sft_loss", "token_logps"]
