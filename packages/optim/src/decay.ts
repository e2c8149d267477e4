/**
 * Which parameters get weight decay, as Hugging Face `Trainer.get_decay_parameter_names` decides:
 * none for parameters inside a `nn.LayerNorm` and none whose lower-cased name matches
 * `bias`, `layernorm`, `rmsnorm`, `(^|.)norm($|.)` or `_norm($|.)`; every other weight decays,
 * the embedding matrices and the classifier weights included. Without module types we see only the
 * names, so LayerNorm is recognised by its checkpoint name (`…LayerNorm.weight`), which the name
 * patterns cover for every XLM-R / BERT checkpoint.
 */
const NO_DECAY_PATTERNS = [/bias/, /layernorm/, /rmsnorm/, /(?:^|\.)norm(?:$|\.)/, /_norm(?:$|\.)/];

export function isDecayParameter(name: string): boolean {
  const lower = name.toLowerCase();
  return !NO_DECAY_PATTERNS.some((p) => p.test(lower));
}

/** The names, in their given order, that get weight decay. */
export function decayParameterNames(names: Iterable<string>): string[] {
  return [...names].filter(isDecayParameter);
}
