// Builds calendar invitations exactly as nodemailer renders them for Cal.com (an `icalEvent` with
// an `ics`-generated calendar), and writes them to ../ as .eml files. Regenerate with:
//   npm ci && node generate.js
// Boundaries, dates and identifiers are fixed so a regeneration produces the same bytes.
'use strict';

const fs = require('fs');
const path = require('path');
const ics = require('ics');
const MailComposer = require('nodemailer/lib/mail-composer');
// The SMTP transport sends the message through this stream, so the relay sees CRLF line ends.
const LeWindows = require('nodemailer/lib/mime-node/le-windows');

const OUT = path.join(__dirname, '..');
const DATE = new Date('2026-01-15T09:00:00Z');
const STAMP = Date.UTC(2026, 0, 15, 9, 0, 0);

function calendar(method, extra) {
    const { error, value } = ics.createEvent({
        productId: 'calcom/ics',
        method,
        uid: 'b2c4e6f8-corpus@cal.com',
        timestamp: STAMP,
        start: [2026, 2, 3, 14, 30],
        startInputType: 'utc',
        startOutputType: 'utc',
        duration: { minutes: 30 },
        title: extra.title,
        description: extra.description,
        location: extra.location,
        status: method === 'CANCEL' ? 'CANCELLED' : 'CONFIRMED',
        organizer: { name: extra.organizerName, email: 'organizer@example.org' },
        attendees: extra.attendees
    });
    if (error) {
        throw error;
    }
    return value;
}

function render(name, mail) {
    const composer = new MailComposer(
        Object.assign(
            {
                date: DATE,
                messageId: `<${name}@corpus.cal.example>`,
                baseBoundary: name.replace(/[^a-z0-9]/gi, ''),
                headers: { 'X-Mailer': 'nodemailer (Cal.com)' }
            },
            mail
        )
    );
    return new Promise((resolve, reject) => {
        const chunks = [];
        const stream = composer.compile().createReadStream().pipe(new LeWindows());
        stream.on('data', chunk => chunks.push(chunk));
        stream.on('error', reject);
        stream.on('end', () => {
            fs.writeFileSync(path.join(OUT, `${name}.eml`), Buffer.concat(chunks));
            resolve();
        });
    });
}

const attendee = { name: 'Alex Example', email: 'alex@example.net', rsvp: true, partstat: 'ACCEPTED', role: 'REQ-PARTICIPANT' };
const guest = { name: 'Jörg Müller', email: 'joerg@example.com', rsvp: true, partstat: 'NEEDS-ACTION', role: 'OPT-PARTICIPANT' };

async function main() {
    // Cal.com "attendee scheduled" mail: text + html alternatives, the calendar as a third
    // alternative and again as an `event.ics` attachment (nodemailer does both for icalEvent).
    await render('nodemailer-calcom-request', {
        from: 'Olivia Organizer <notifications@cal.example>',
        to: 'Alex Example <alex@example.net>',
        replyTo: ['alex@example.net', 'organizer@example.org'],
        subject: 'Confirmed: 30 Min Meeting between Olivia Organizer and Alex Example',
        text: 'Your meeting has been booked.\n\nWhat: 30 Min Meeting\nWhen: Tuesday, 3 February 2026 14:30 UTC\n',
        html: '<html><body><h1>Your meeting has been booked</h1><p>30 Min Meeting, 3 February 2026 14:30 UTC</p></body></html>',
        icalEvent: {
            filename: 'event.ics',
            method: 'REQUEST',
            content: calendar('REQUEST', {
                title: '30 Min Meeting between Olivia Organizer and Alex Example',
                description: 'Booked through Cal.com',
                location: 'https://cal.example/video/abc',
                organizerName: 'Olivia Organizer',
                attendees: [attendee]
            })
        }
    });

    // Cancellation to two attendees, one of them with a non-ASCII name.
    await render('nodemailer-calcom-cancel', {
        from: 'Olivia Organizer <notifications@cal.example>',
        to: ['Alex Example <alex@example.net>', 'Jörg Müller <joerg@example.com>'],
        subject: 'Cancelled: 30 Min Meeting',
        text: 'This event has been cancelled.\n',
        html: '<p>This event has been cancelled.</p>',
        icalEvent: {
            filename: 'event.ics',
            method: 'CANCEL',
            content: calendar('CANCEL', {
                title: '30 Min Meeting',
                description: 'Abgesagt – cancelled',
                location: 'Café Zürich',
                organizerName: 'Olivia Organizer',
                attendees: [attendee, guest]
            })
        }
    });

    // Rescheduled booking with a PDF attachment and an inline image (multipart/related inside).
    await render('nodemailer-calcom-attachments', {
        from: '"Ünïcödé Organizer" <notifications@cal.example>',
        to: 'Jörg Müller <joerg@example.com>',
        cc: 'Alex Example <alex@example.net>',
        subject: 'Umgeplant: Besprechung mit Jörg Müller – 日本語',
        text: 'Your booking was rescheduled.\n',
        html: '<p>Rescheduled</p><img src="cid:logo@cal.example">',
        attachments: [
            { filename: 'agenda.pdf', content: Buffer.from('%PDF-1.4\n% corpus\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n'), contentType: 'application/pdf' },
            { filename: 'logo.png', cid: 'logo@cal.example', content: Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), contentType: 'image/png' }
        ],
        icalEvent: {
            filename: 'event.ics',
            method: 'REQUEST',
            content: calendar('REQUEST', {
                title: 'Besprechung mit Jörg Müller – 日本語',
                description: 'Neuer Termin',
                location: 'München',
                organizerName: 'Ünïcödé Organizer',
                attendees: [guest, attendee]
            })
        }
    });

    // An invitation with no text or html at all: the calendar is the only alternative.
    await render('nodemailer-ical-only', {
        from: 'scheduler@cal.example',
        to: 'alex@example.net',
        subject: 'Invitation',
        icalEvent: {
            method: 'PUBLISH',
            content: calendar('PUBLISH', {
                title: 'Published event',
                description: 'No body',
                location: 'Online',
                organizerName: 'Scheduler',
                attendees: [attendee]
            })
        }
    });
}

main().catch(err => {
    console.error(err);
    process.exit(1);
});
