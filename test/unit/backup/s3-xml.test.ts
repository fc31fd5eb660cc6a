import { describe, expect, it } from 'vitest';
import { parseListPage } from '../../../src/backup/storage/s3-http.js';
import { xmlText } from '../../../src/backup/storage/s3-xml.js';

/** The ListObjectsV2 and error answers S3 reads parse without a general XML parser. */

const page = (inner: string): Buffer =>
  Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<!-- a comment -->\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${inner}</ListBucketResult>`);

describe('parseListPage', () => {
  it('reads objects, common prefixes, truncation and the continuation token; entities and CDATA decoded', () => {
    const got = parseListPage(
      page(
        '<Name>b</Name><Prefix>p&amp;q</Prefix><KeyCount>3</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>' +
          '<Contents><Key>a &lt;b&gt; &#x41;&#66; &quot;&apos;&amp;</Key><LastModified>2024-01-02T03:04:05.000Z</LastModified><ETag>&quot;e&quot;</ETag><Size>12</Size><Owner><ID>x</ID><DisplayName>y</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents>' +
          '<Contents>\n  <Key><![CDATA[c<d]]></Key>\n  <Size>0</Size>\n</Contents>' +
          '<CommonPrefixes><Prefix>ns-x:y-0190/</Prefix></CommonPrefixes><NextContinuationToken>t/+=&amp;</NextContinuationToken>',
      ),
    );
    expect(got).toEqual({
      objects: [
        { key: 'a <b> AB "\'&', size: 12, lastModified: new Date('2024-01-02T03:04:05.000Z') },
        { key: 'c<d', size: 0, lastModified: new Date(0) },
      ],
      prefixes: ['ns-x:y-0190/'],
      truncated: true,
      nextToken: 't/+=&',
    });
  });

  it('an empty page, and a last one', () => {
    expect(parseListPage(page('<Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>'))).toEqual({ objects: [], prefixes: [], truncated: false, nextToken: undefined });
    expect(parseListPage(page('<Contents><Key>k</Key><Size>1</Size></Contents><IsTruncated> false </IsTruncated>')).truncated).toBe(false);
  });

  it('refuses what is not a listing', () => {
    expect(() => parseListPage(Buffer.from('no xml here'))).toThrow(/not XML/);
    expect(() => parseListPage(Buffer.from('<Error><Code>AccessDenied</Code></Error>'))).toThrow(/without a ListBucketResult/);
  });
});

describe('xmlText', () => {
  it('decodes the predefined entities and character references, leaves unknown ones, refuses markup', () => {
    expect(xmlText('&lt;&gt;&amp;&quot;&apos;&#233;&#x1F600;')).toBe('<>&"\'é😀');
    expect(xmlText('&nbsp;&#xZZ;')).toBe('&nbsp;&#xZZ;');
    expect(xmlText('a<b>c</b>')).toBeUndefined();
    expect(xmlText('x<![CDATA[<&>]]>y')).toBe('x<&>y');
  });
});
