// @ts-check
// The microphone's samples, taken on the audio thread (voice.js loads this module): a
// ScriptProcessorNode handed them over on the page's main thread, which drops blocks of
// sound whenever that thread is busy (a phone drawing its map, a slow device). Blocks of
// about 43 ms are posted to the page; "flush" posts what is left, then "done".

const BLOCK = 2048;

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.buf = new Float32Array(BLOCK);
    this.n = 0;
    this.port.onmessage = (e) => {
      if (e.data !== 'flush') return;
      if (this.n) this.port.postMessage(this.buf.slice(0, this.n));
      this.n = 0;
      this.port.postMessage('done');
    };
  }

  /** @param {Float32Array[][]} inputs */
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    let at = 0;
    while (at < ch.length) {
      const k = Math.min(ch.length - at, BLOCK - this.n);
      this.buf.set(ch.subarray(at, at + k), this.n);
      this.n += k;
      at += k;
      if (this.n === BLOCK) {
        this.port.postMessage(this.buf, [this.buf.buffer]);
        this.buf = new Float32Array(BLOCK);
        this.n = 0;
      }
    }
    return true;
  }
}

registerProcessor('fieldmesh-capture', Capture);
