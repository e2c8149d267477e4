/** The loss (or the weights) became NaN or infinite: training stopped; the last checkpoint is the last good state. */
export class NonFiniteLossError extends Error {
  override name = 'NonFiniteLossError';
}
