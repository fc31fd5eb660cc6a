/**
 * The little XML that S3 reads need: the ListObjectsV2 answer (ListBucketResult) and an error
 * answer (Error). Both are flat documents of known elements, so this reads them directly rather
 * than through a general XML parser (which took longer to load than a whole restore plan takes to
 * list, and a few milliseconds per page to parse). Character data is decoded: the five predefined
 * entities, numeric character references and CDATA sections.
 */

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** The character data of an element's content (entities and CDATA decoded), or undefined when it holds elements. */
export function xmlText(raw: string): string | undefined {
  let out = '';
  let at = 0;
  for (;;) {
    const cdata = raw.indexOf('<![CDATA[', at);
    const chunk = raw.slice(at, cdata < 0 ? raw.length : cdata);
    if (chunk.includes('<')) return undefined;
    out += decodeEntities(chunk);
    if (cdata < 0) return out;
    const end = raw.indexOf(']]>', cdata + 9);
    if (end < 0) return undefined;
    out += raw.slice(cdata + 9, end);
    at = end + 3;
  }
}

function decodeEntities(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (whole, name: string) => {
    if (name.startsWith('#')) {
      const code = name[1] === 'x' || name[1] === 'X' ? Number.parseInt(name.slice(2), 16) : Number.parseInt(name.slice(1), 10);
      return Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[name] ?? whole;
  });
}

/** The content of each `<name>…</name>` (or `<name/>`, as '') in `xml`, in order; attributes are ignored. */
export function xmlElements(xml: string, name: string): string[] {
  const out: string[] = [];
  const open = new RegExp(`<${name}(?:\\s[^>]*?)?(/?)>`, 'g');
  const close = `</${name}>`;
  for (let m = open.exec(xml); m !== null; m = open.exec(xml)) {
    if (m[1] === '/') {
      out.push('');
      continue;
    }
    const start = m.index + m[0].length;
    const end = xml.indexOf(close, start);
    if (end < 0) break;
    out.push(xml.slice(start, end));
    open.lastIndex = end + close.length;
  }
  return out;
}

/** The text of the first `<name>` element in `xml`, or undefined. */
export function xmlChildText(xml: string, name: string): string | undefined {
  const first = xmlElements(xml, name)[0];
  return first === undefined ? undefined : xmlText(first);
}

/** `xml` without its prolog, comments and processing instructions, or null when it is not an XML document. */
export function xmlBody(xml: string): string | null {
  const body = xml.replace(/<\?[\s\S]*?\?>|<!--[\s\S]*?-->/g, '').trim();
  return body.startsWith('<') && body.endsWith('>') ? body : null;
}
