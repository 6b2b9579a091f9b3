// Replies as Markdown, safely: marked turns the text into HTML, with any raw HTML in the text
// shown as text rather than passed through; DOMPurify then keeps only the elements and
// attributes below, drops every URL that is not http(s), mailto or a fragment, and the links
// left open in a new tab without the opener or a referrer. Code blocks get a Copy button.
import { Marked } from './vendor/marked.esm.js';
import DOMPurify from './vendor/purify.es.js';

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => ESCAPES[c]);

const marked = new Marked({
  gfm: true,
  renderer: {
    html: ({ text }) => escapeHtml(text),
  },
});

const POLICY = {
  ALLOWED_TAGS: ['p', 'br', 'strong', 'em', 'del', 'code', 'pre', 'blockquote', 'ul', 'ol', 'li',
    'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'a', 'table', 'thead', 'tbody', 'tr', 'th', 'td'],
  ALLOWED_ATTR: ['href', 'title', 'start', 'align'],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
  RETURN_DOM_FRAGMENT: true,
};

const purify = DOMPurify(window);
purify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

/** A code block with a button that copies its text. */
function withCopy(pre) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'copy';
  button.textContent = 'Copy code';
  button.addEventListener('click', async () => {
    await navigator.clipboard?.writeText(pre.textContent);
    button.textContent = 'Copied';
    setTimeout(() => { button.textContent = 'Copy code'; }, 1500);
  });
  const block = document.createElement('div');
  block.className = 'code';
  pre.replaceWith(block);
  block.append(button, pre);
}

/** Markdown that grows as it streams into `node`, rendered at most once a frame; `finish`
 * renders it at once (with the final text, when given). */
export function liveMarkdown(node) {
  let text = '';
  let frame = null;
  const render = () => {
    frame = null;
    renderMarkdown(node, text);
  };
  return {
    append(more) {
      text += more;
      frame ??= requestAnimationFrame(render);
    },
    finish(final = text) {
      text = final;
      if (frame) cancelAnimationFrame(frame);
      render();
    },
  };
}

/** Replaces `node`'s content with `text` rendered as sanitized Markdown. */
export function renderMarkdown(node, text) {
  const fragment = purify.sanitize(marked.parse(text ?? ''), POLICY);
  for (const pre of fragment.querySelectorAll('pre')) withCopy(pre);
  node.replaceChildren(fragment);
}
